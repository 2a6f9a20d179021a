/* The console's only script: confirmations and the overview's refresh.
   Served from 'self' (Content-Security-Policy); no inline code anywhere. */
(function () {
  "use strict";

  /* A form with data-confirm asks before it is sent. */
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form && form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });

  /* An element with data-refresh-url is replaced by a fresh copy every few seconds. */
  function keepFresh(box) {
    var url = box.getAttribute("data-refresh-url");
    var every = (parseInt(box.getAttribute("data-refresh-s"), 10) || 5) * 1000;

    function openDetails() {
      var ids = [];
      box.querySelectorAll("details[open][id]").forEach(function (d) { ids.push(d.id); });
      return ids;
    }

    function swap(html) {
      var open = openDetails();
      box.innerHTML = html;
      open.forEach(function (id) {
        var d = document.getElementById(id);
        if (d) { d.open = true; }
      });
      box.setAttribute("data-refreshed", String(parseInt(box.getAttribute("data-refreshed"), 10) + 1));
      box.classList.remove("stale");
    }

    function tick() {
      if (document.hidden) {
        window.setTimeout(tick, every);
        return;
      }
      fetch(url, { credentials: "same-origin", headers: { "X-Console-Refresh": "1" } })
        .then(function (response) {
          if (response.status === 401) {
            window.location.reload(); /* the session ended: show the sign-in page */
            return null;
          }
          if (!response.ok) { throw new Error("HTTP " + response.status); }
          return response.text();
        })
        .then(function (html) { if (html !== null) { swap(html); } })
        .catch(function () { box.classList.add("stale"); })
        .then(function () { window.setTimeout(tick, every); });
    }

    window.setTimeout(tick, every);
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-refresh-url]").forEach(keepFresh);
  });
})();
