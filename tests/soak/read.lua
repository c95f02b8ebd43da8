-- wrk script: GET requests with a bearer token (PATH and TOKEN from the environment);
-- counts answers that are not 200.
local token = os.getenv("TOKEN")
local path = os.getenv("READ_PATH")
local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

-- Milliseconds between one answer and a connection's next request (the load is bounded).
local pause = tonumber(os.getenv("PAUSE_MS") or "0")

function delay()
   return pause
end

function init(args)
   bad = 0
end

function request()
   return wrk.format("GET", path, {["Authorization"] = "Bearer " .. token})
end

function response(status, headers, body)
   if status ~= 200 then
      bad = bad + 1
   end
end

function done(summary, latency, requests)
   local bad_all = 0
   for _, thread in ipairs(threads) do
      bad_all = bad_all + (thread:get("bad") or 0)
   end
   io.write(string.format("RESULT answered=%d bad=%d errors=%d p50_ms=%.2f p99_ms=%.2f\n",
      summary.requests, bad_all,
      summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
      latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
