// gridwatch's service worker: the field forms and the assets they need load with no signal,
// and the outbox is sent by Background Sync where the browser has it.
"use strict";
importScripts("/assets/outbox.js");
var CACHE = "gridwatch-v1";

self.addEventListener("install", function () { self.skipWaiting(); });
self.addEventListener("activate", function (event) { event.waitUntil(self.clients.claim()); });

self.addEventListener("fetch", function (event) {
  var request = event.request;
  var url = new URL(request.url);
  if (request.method !== "GET" || url.origin !== self.location.origin) return;
  if (url.pathname.indexOf("/assets/") === 0) {
    // Assets: from the cache first (hashed routes never change).
    event.respondWith(caches.open(CACHE).then(function (cache) {
      return cache.match(request).then(function (hit) {
        return hit || fetch(request).then(function (response) {
          if (response.ok) cache.put(request, response.clone());
          return response;
        });
      });
    }));
  } else if (/^\/gates\/[^/]+\/(check|issue)$/.test(url.pathname)) {
    // A gate's forms: from the network, else as last seen (the page gives each record a
    // fresh event id when it is saved offline).
    event.respondWith(fetch(request).then(function (response) {
      if (response.ok) {
        var copy = response.clone();
        caches.open(CACHE).then(function (cache) { cache.put(url.pathname, copy); });
      }
      return response;
    }, function () {
      return caches.open(CACHE).then(function (cache) { return cache.match(url.pathname); }).then(function (hit) {
        return hit || Response.error();
      });
    }));
  }
});

self.addEventListener("sync", function (event) {
  if (event.tag === "gridwatch-outbox") {
    event.waitUntil(gridwatchOutbox.flush(null).then(function (counts) {
      if (counts.waiting > 0) throw new Error("some records still wait"); // retried later
    }));
  }
});
