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
})();
