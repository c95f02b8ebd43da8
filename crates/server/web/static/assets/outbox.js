// gridwatch's outbox: forms recorded with no signal wait on the phone (IndexedDB), each with
// the event id and field time it was recorded with, until they can be sent. Used by the pages
// (app.js) and by the service worker (sw.js, for Background Sync). Sending twice records
// once: the server knows each event by its id.
"use strict";
var gridwatchOutbox = (function () {
  var DB = "gridwatch";
  var STORE = "outbox";

  function open() {
    return new Promise(function (resolve, reject) {
      var request = indexedDB.open(DB, 1);
      request.onupgradeneeded = function () {
        request.result.createObjectStore(STORE, { keyPath: "id" });
      };
      request.onsuccess = function () { resolve(request.result); };
      request.onerror = function () { reject(request.error); };
    });
  }

  function run(mode, work) {
    return open().then(function (db) {
      return new Promise(function (resolve, reject) {
        var tx = db.transaction(STORE, mode);
        var result = work(tx.objectStore(STORE));
        tx.oncomplete = function () { resolve(result && "result" in result ? result.result : undefined); };
        tx.onerror = function () { reject(tx.error); };
      });
    });
  }

  // A UUIDv7 (48 bits of Unix milliseconds, then random bits), as the server makes them.
  function uuid7() {
    var bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    var ms = Date.now();
    for (var i = 5; i >= 0; i--) { bytes[i] = ms % 256; ms = Math.floor(ms / 256); }
    bytes[6] = (bytes[6] & 0x0f) | 0x70;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    var hex = Array.prototype.map.call(bytes, function (b) { return (b + 256).toString(16).slice(1); }).join("");
    return hex.slice(0, 8) + "-" + hex.slice(8, 12) + "-" + hex.slice(12, 16) + "-" + hex.slice(16, 20) + "-" + hex.slice(20);
  }

  function save(entry) { return run("readwrite", function (store) { store.put(entry); }); }
  function all() { return run("readonly", function (store) { return store.getAll(); }); }
  function remove(id) { return run("readwrite", function (store) { store.delete(id); }); }

  // Sends the waiting entries of `actor` (a shared phone keeps each person's records for
  // that person's session); resolves to { sent, waiting, refused }. `csrf`, when given, is
  // the current session's secret (a page's); the worker uses the one saved.
  function flush(csrf, actor) {
    var counts = { sent: 0, waiting: 0, refused: 0 };
    return all().then(function (entries) {
      return entries.reduce(function (chain, entry) {
        return chain.then(function () {
          if (actor && entry.actor !== actor) { counts.waiting++; return; }
          var body = new URLSearchParams(entry.body);
          if (csrf) body.set("_csrf", csrf);
          return fetch(entry.url, {
            method: "POST",
            body: body,
            credentials: "same-origin",
            headers: { "Content-Type": "application/x-www-form-urlencoded", "X-Gridwatch-Script": "outbox" },
          }).then(function (response) {
            // A redirect to the sign-in page is no answer (older servers); a 401 says so.
            var signIn = response.redirected && new URL(response.url).pathname === "/signin";
            if (response.ok && !signIn) { counts.sent++; return remove(entry.id); }
            // Not signed in, a stale secret, a conflict or a failure of the server: later.
            if (signIn || response.status === 401 || response.status === 403 || response.status === 409 || response.status >= 500) {
              counts.waiting++;
              return;
            }
            // The rules refused it (a closed gate...): it will never go; say so, drop it.
            counts.refused++;
            return remove(entry.id);
          }, function () { counts.waiting++; });
        });
      }, Promise.resolve()).then(function () { return counts; });
    });
  }

  function mine(actor) {
    return all().then(function (entries) { return entries.filter(function (entry) { return entry.actor === actor; }); });
  }

  return { uuid7: uuid7, save: save, all: all, mine: mine, flush: flush };
})();
