// gridwatch dashboard: the little script the pages need beyond htmx.
"use strict";
(function () {
  // Every htmx request of a signed-in page carries the session's CSRF secret.
  document.addEventListener("htmx:configRequest", function (event) {
    var csrf = document.body.dataset.csrf;
    if (csrf) {
      event.detail.headers["X-CSRF-Token"] = csrf;
    }
  });

  // The replay's step buttons move the slider (which redraws the moment); without script
  // they are plain submit buttons naming their step, which a script must not send along.
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-step], [data-step-to]").forEach(function (button) {
      button.removeAttribute("name");
      button.type = "button";
    });
  });
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-step], [data-step-to]");
    var range = document.getElementById("step");
    if (!button || !range) return;
    event.preventDefault();
    var max = Number(range.max);
    var to = button.dataset.stepTo;
    var value = to === "max" ? max : to !== undefined ? Number(to) : Number(range.value) + Number(button.dataset.step);
    range.value = String(Math.max(0, Math.min(max, value)));
    range.dispatchEvent(new Event("input", { bubbles: true }));
  });

  document.addEventListener("click", function (event) {
    if (event.target.closest("[data-print]")) window.print();
  });

  // "Copy as text": the text report, ready to paste into a chat group.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) return;
    var source = document.querySelector(button.dataset.copy);
    var status = document.querySelector("[data-copy-status]");
    var done = function (ok) {
      if (status) status.textContent = ok ? (document.documentElement.lang === "zh-CN" ? "已复制。" : "Copied.") : (document.documentElement.lang === "zh-CN" ? "无法复制：请手动选择文字。" : "Could not copy: select the text by hand.");
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(source.value).then(function () { done(true); }, function () { done(false); });
    } else {
      source.select();
      done(document.execCommand("copy"));
    }
  });

  // Offline capture: a field form sent with no signal waits in the outbox on this phone,
  // with its event id and the moment it was recorded, and goes when the signal is back (on
  // the `online` event, on the next page load, or by Background Sync).
  function banner() { return document.getElementById("outbox-banner"); }
  function words(name, count) {
    var element = banner();
    return element ? element.dataset[name].replace("{n}", String(count)) : "";
  }
  function showWaiting() {
    if (typeof gridwatchOutbox === "undefined" || !banner()) return Promise.resolve();
    return gridwatchOutbox.mine(document.body.dataset.actor).then(function (entries) {
      var element = banner();
      element.hidden = entries.length === 0;
      element.textContent = words("waiting", entries.length);
      element.dataset.count = String(entries.length);
    });
  }
  function flush() {
    if (typeof gridwatchOutbox === "undefined" || !document.body.dataset.csrf) return;
    gridwatchOutbox.flush(document.body.dataset.csrf, document.body.dataset.actor).then(function (counts) {
      return showWaiting().then(function () {
        var note = document.getElementById("outbox-sent");
        if (!note || (counts.sent === 0 && counts.refused === 0)) return;
        note.hidden = false;
        note.textContent = [counts.sent ? words("sent", counts.sent) : "", counts.refused ? words("refused", counts.refused) : ""].join(" ").trim();
      });
    });
  }
  window.addEventListener("online", flush);
  document.addEventListener("DOMContentLoaded", function () {
    if ("serviceWorker" in navigator) navigator.serviceWorker.register("/sw.js", { scope: "/" }).catch(function () {});
    // Each load of a form records under an id of its own (a form kept by the service worker
    // for loading with no signal would otherwise give every record the same id).
    if (typeof gridwatchOutbox !== "undefined") {
      document.querySelectorAll("form[data-outbox] [name=event_id]").forEach(function (field) {
        field.value = gridwatchOutbox.uuid7();
      });
    }
    flush();
  });
  // Signing out forgets the pages kept for offline use (they name the person).
  document.addEventListener("submit", function (event) {
    if (event.target.matches("form[action='/signout']") && "caches" in window) caches.delete("gridwatch-v1");
  });
  document.addEventListener("submit", function (event) {
    var form = event.target.closest("form[data-outbox]");
    if (!form || typeof gridwatchOutbox === "undefined") return;
    event.preventDefault();
    var data = new FormData(form);
    var status = form.querySelector("[data-outbox-status]");
    var keep = function () {
        data.set("occurred_at", new Date().toISOString());
        var entry = { id: String(data.get("event_id")), url: form.action, body: new URLSearchParams(data).toString(),
                      actor: document.body.dataset.actor, saved_at: Date.now() };
        gridwatchOutbox.save(entry).then(function () {
          form.reset();
          form.querySelector("[name=event_id]").value = gridwatchOutbox.uuid7();
          if (status) { status.hidden = false; status.textContent = words("saved", 1); }
          showWaiting();
          if ("serviceWorker" in navigator && "SyncManager" in window) {
            navigator.serviceWorker.ready.then(function (registration) { return registration.sync.register("gridwatch-outbox"); }).catch(function () {});
          }
        });
    };
    fetch(form.action, { method: "POST", body: new URLSearchParams(data), credentials: "same-origin",
                         headers: { "Content-Type": "application/x-www-form-urlencoded", "X-Gridwatch-Script": "form" } })
      .then(function (response) {
        // Recorded: to the page the server sent back. Not signed in, or a failure that may
        // pass: kept on the phone like a record with no signal. Refused: the form again, by
        // the server, with its messages.
        if (response.ok) window.location.assign(response.url);
        else if (response.status === 401 || response.status === 409 || response.status >= 500) keep();
        else HTMLFormElement.prototype.submit.call(form);
      }, keep);
  });
})();
