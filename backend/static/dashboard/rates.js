// Live response rates: poll the cycle's rates.json every 5 s and update the table in place.
(function () {
  "use strict";
  var box = document.getElementById("rates");
  if (!box || !window.fetch) return;
  var url = box.getAttribute("data-rates-url");
  var shownStarted = Number(box.getAttribute("data-started"));
  var shownCompleted = Number(box.getAttribute("data-completed"));
  var notice = document.getElementById("new-answers");
  // Numbers in the page's language (as the server wrote them), the percent as its text says.
  var lang = document.documentElement.getAttribute("lang") || "en";
  var percentFormat = box.getAttribute("data-percent-format") || "{n}%";
  var fmt;
  try { fmt = new Intl.NumberFormat(lang); } catch (e) { fmt = null; }

  function num(x) { return fmt ? fmt.format(x) : String(x); }
  function percent(x) { return percentFormat.replace("{n}", num(x)); }
  function setText(el, value) { if (el && el.textContent !== String(value)) el.textContent = value; }

  function update(data) {
    setText(box.querySelector('[data-total="started"]'), num(data.started));
    setText(box.querySelector('[data-total="completed"]'), num(data.completed));
    data.roles.forEach(function (r) {
      var row = box.querySelector('tr[data-role="' + r.role + '"]');
      if (!row) return;
      setText(row.querySelector('[data-f="started"]'), num(r.started));
      setText(row.querySelector('[data-f="completed"]'), num(r.completed));
      if (r.percent !== null) {
        setText(row.querySelector('[data-f="percent"]'), percent(r.percent));
        var bar = row.querySelector(".progress");
        if (bar) {
          bar.setAttribute("aria-valuenow", r.percent);
          bar.firstElementChild.style.width = r.percent + "%";
        }
      }
      if (r.started || r.target) row.classList.remove("quiet");
    });
    if (notice && (data.started !== shownStarted || data.completed !== shownCompleted)) {
      notice.hidden = false;
    }
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (resp) { return resp.ok ? resp.json() : null; })
      .then(function (data) { if (data) update(data); })
      .catch(function () { /* offline for a moment: try again at the next tick */ })
      .then(function () { window.setTimeout(poll, 5000); });
  }
  window.setTimeout(poll, 5000);
})();
