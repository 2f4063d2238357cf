// bext dashboard: the live parts of the overview, from server-sent events
// (/__bext/ui/events). The page reads the same without it.
(function () {
  "use strict";
  if (!window.EventSource) return;
  var traffic = document.getElementById("traffic");
  var waf = document.getElementById("waf-events");
  if (!traffic && !waf) return;
  var live = document.getElementById("live");
  var source = new EventSource("/__bext/ui/events");
  source.onopen = function () { if (live) { live.textContent = "live"; live.className = "live on"; } };
  source.onerror = function () { if (live) { live.textContent = "reconnecting"; live.className = "live"; } };
  source.addEventListener("traffic", function (e) {
    var d = JSON.parse(e.data);
    var cells = traffic ? traffic.querySelectorAll("td[data-rps]") : [];
    for (var i = 0; i < cells.length; i++) {
      var app = cells[i].getAttribute("data-rps");
      if (app in d.rps) cells[i].textContent = d.rps[app].toFixed(1);
      if (app in d.requests && cells[i].nextElementSibling) cells[i].nextElementSibling.textContent = d.requests[app];
    }
  });
  source.addEventListener("waf", function (e) {
    if (!waf) return;
    var ev = JSON.parse(e.data);
    var none = document.getElementById("waf-events-none");
    if (none) none.parentNode.removeChild(none);
    var cells = [
      new Date(ev.time * 1000).toUTCString(), ev.action, ev.app || "", ev.rule || "", ev.category || "",
      ev.method + " " + ev.host + ev.path, ev.client_ip, ev.request_id
    ];
    var tr = document.createElement("tr");
    tr.className = "waf-event fresh";
    cells.forEach(function (text) {
      var td = document.createElement("td");
      td.textContent = text == null ? "" : String(text);
      tr.appendChild(td);
    });
    var body = waf.tBodies[0];
    body.insertBefore(tr, body.firstChild);
  });
})();
