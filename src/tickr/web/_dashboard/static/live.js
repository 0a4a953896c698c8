// Tickr dashboard: live refresh and "select all". Every page works without this file.
"use strict";

(function () {
  function selectAll() {
    document.querySelectorAll("[data-select-all]").forEach(function (box) {
      box.addEventListener("change", function () {
        var form = box.closest("form");
        form.querySelectorAll('input[name="ids"]').forEach(function (each) {
          each.checked = box.checked;
        });
      });
    });
  }

  function busy() {
    // Do not replace the page under the user: a selection, a focused field, a hover on a form.
    if (document.querySelector('input[name="ids"]:checked')) return true;
    var focused = document.activeElement;
    return !!(focused && focused.closest && focused.closest("#live form"));
  }

  function refresh() {
    if (document.hidden || busy()) return;
    fetch(window.location.href, { credentials: "same-origin", headers: { "X-Tickr-Refresh": "1" } })
      .then(function (response) {
        if (!response.ok || response.redirected) return null;
        return response.text();
      })
      .then(function (html) {
        if (!html || busy()) return;
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("live");
        var current = document.getElementById("live");
        if (fresh && current) {
          fresh.querySelectorAll(".notice").forEach(function (notice) { notice.remove(); });
          current.replaceWith(fresh);
          selectAll();
          document.body.dataset.refreshed = String(Date.now());
        }
      })
      .catch(function () { /* offline for a moment: the next tick tries again */ });
  }

  document.addEventListener("DOMContentLoaded", function () {
    selectAll();
    var seconds = Number(document.body.dataset.live || 0);
    if (seconds > 0) window.setInterval(refresh, seconds * 1000);
  });
})();
