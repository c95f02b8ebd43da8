-- wrk script: durable patrol checks through POST /api/v1/commands, each with its own UUIDv7
-- event id; every id answered 201 is written to ACKED_FILE (one file per thread) so that the
-- soak can check each one is in the log. GATES gates, round-robin (1: all on one gate).
local gates = tonumber(os.getenv("GATES") or "8")
local token = os.getenv("TOKEN")
local acked_file = os.getenv("ACKED_FILE")
local threads = {}
local counter = 0

function setup(thread)
   thread:set("id", counter)
   counter = counter + 1
   table.insert(threads, thread)
end

-- Milliseconds between one answer and a connection's next request (the load is bounded).
local pause = tonumber(os.getenv("PAUSE_MS") or "0")

function delay()
   return pause
end

function init(args)
   -- Seeded from the kernel: several wrk processes start in the same second.
   local urandom = io.open("/dev/urandom", "rb")
   local bytes = urandom:read(4)
   urandom:close()
   math.randomseed(bytes:byte(1) * 16777216 + bytes:byte(2) * 65536 + bytes:byte(3) * 256 + bytes:byte(4))
   sequence = 0
   created = 0
   refused = 0
   out = io.open(acked_file .. "." .. id, "a")
end

local function uuid_v7()
   local ms = math.floor(os.time() * 1000) + sequence % 1000
   return string.format("%08x-%04x-7%03x-%04x-%04x%04x%04x",
      math.floor(ms / 65536), ms % 65536, math.random(0, 4095),
      0x8000 + math.random(0, 0x3fff), math.random(0, 0xffff), math.random(0, 0xffff), math.random(0, 0xffff))
end

function request()
   sequence = sequence + 1
   local event_id = uuid_v7()
   local gate = "soak-gate-" .. (sequence % gates)
   local body = '{"command":"record-patrol-check","event_id":"' .. event_id ..
      '","data":{"checkpoint_id":"' .. gate .. '","staff_id":"soak-guard","result":"ok"}}'
   return wrk.format("POST", "/api/v1/commands",
      {["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json"}, body)
end

function response(status, headers, body)
   -- One connection sends its next request only after this answer, but connections share
   -- the thread: the event id is read back from the answer itself.
   local event_id = string.match(body or "", '"event_id":"([0-9a-f%-]+)"')
   if status == 201 and event_id then
      created = created + 1
      out:write(event_id, "\n")
      out:flush()
   else
      refused = refused + 1
   end
end

function done(summary, latency, requests)
   local created_all, refused_all = 0, 0
   for _, thread in ipairs(threads) do
      created_all = created_all + (thread:get("created") or 0)
      refused_all = refused_all + (thread:get("refused") or 0)
   end
   io.write(string.format("RESULT created=%d refused=%d errors=%d p50_ms=%.2f p99_ms=%.2f\n",
      created_all, refused_all,
      summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
      latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
