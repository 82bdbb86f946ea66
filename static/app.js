// Live updates: the page is complete without this script. With it, the view
// is replaced in place whenever the server publishes a new snapshot
// (announced over Server-Sent Events); the selected view stays as in the URL.
(function () {
  "use strict";
  var main = document.getElementById("view");
  if (!main || !window.EventSource || !window.fetch) return;
  var version = function () {
    var v = main.querySelector("[data-version]");
    return v ? Number(v.getAttribute("data-version")) : -1;
  };
  var busy = false, again = false;
  function update() {
    if (busy) { again = true; return; }
    busy = true;
    fetch("/view" + window.location.search, { headers: { Accept: "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (html === null) return;
        var t = document.createElement("template");
        t.innerHTML = html;
        main.replaceChildren(t.content);
        document.body.setAttribute("data-live-version", String(version()));
      })
      .catch(function () { /* the next snapshot event retries */ })
      .then(function () {
        busy = false;
        if (again) { again = false; update(); }
      });
  }
  var source = new EventSource("/api/stream");
  source.addEventListener("snapshot", function (e) {
    var v = JSON.parse(e.data).version;
    if (v !== version()) update();
  });
  // EventSource reconnects by itself after errors; on reconnect the server
  // sends the current version first, so a missed update is caught up.
})();
