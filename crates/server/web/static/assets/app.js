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
})();
