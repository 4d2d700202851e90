// Live pages: a <main data-live="MS"> reloads its content every MS milliseconds until the server sends one
// without data-live (the run, approval or promotion has finished). No framework: fetch and swap <main>.
(function () {
  "use strict";
  function schedule() {
    var main = document.querySelector("main[data-live]");
    if (main) {
      setTimeout(refresh, parseInt(main.getAttribute("data-live"), 10) || 2000);
    }
  }
  function refresh() {
    var main = document.querySelector("main[data-live]");
    if (!main) {
      return;
    }
    var active = document.activeElement;
    if (active && main.contains(active) && /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName)) {
      schedule(); // someone is typing: do not wipe what they typed
      return;
    }
    fetch(window.location.href, { cache: "no-store", headers: { Accept: "text/html" } })
      .then(function (response) { return response.text(); })
      .then(function (html) {
        var next = new DOMParser().parseFromString(html, "text/html").querySelector("main");
        if (next) {
          main.replaceWith(document.importNode(next, true));
        }
      })
      .catch(function () { /* the server is busy or restarting: try again */ })
      .then(schedule);
  }
  document.addEventListener("DOMContentLoaded", schedule);
})();
