/* Web chat progressive enhancement: post the card's forms with fetch and swap the card.
   Without this file the page works the same with plain form posts (POST -> redirect -> GET).
   In the Telegram Mini App (/app) the identity is Telegram's signed initData, sent as a header. */
(function () {
  "use strict";

  var root = document.getElementById("chat");
  if (!root || !window.fetch || !window.FormData) { return; }
  var body = document.body;
  var mode = body.getAttribute("data-mode");
  var initData = "";
  var busy = false;

  function readInitData() {
    var tg = window.Telegram && window.Telegram.WebApp;
    if (tg && tg.initData) { return tg.initData; }
    // The Telegram client passes the same data in the URL fragment (#tgWebAppData=...).
    try {
      var params = new URLSearchParams(window.location.hash.slice(1));
      return params.get("tgWebAppData") || "";
    } catch (e) {
      return "";
    }
  }

  function formatCount(n) {
    try {
      return n.toLocaleString(document.documentElement.lang || undefined);
    } catch (e) {
      return String(n);
    }
  }

  // The box takes any length (no maxlength: a paste is never cut); the counter says how
  // many characters there are, and how many too many.
  function counterText(counter, length) {
    var max = parseInt(counter.getAttribute("data-max"), 10) || 0;
    var over = max ? length - max : 0;
    var template = over > 0 ? counter.getAttribute("data-over-template") : null;
    template = template || counter.getAttribute("data-template") || "{count}";
    counter.classList.toggle("is-over", over > 0);
    return template.replace("{count}", formatCount(length)).replace("{over}", formatCount(over));
  }

  function setupCounters() {
    var areas = root.querySelectorAll("textarea[data-counter]");
    Array.prototype.forEach.call(areas, function (area) {
      var counter = document.getElementById(area.getAttribute("data-counter"));
      if (!counter) { return; }
      var update = function () {
        counter.textContent = counterText(counter, area.value.length);
      };
      area.addEventListener("input", update);
      update();
    });
  }

  // Too long to be taken: say so here and send nothing (the text stays in the box).
  function refuseTooLong(form) {
    var area = form.querySelector("textarea[data-counter]");
    var counter = area && document.getElementById(area.getAttribute("data-counter"));
    if (!counter) { return false; }
    var max = parseInt(counter.getAttribute("data-max"), 10) || 0;
    if (!max || area.value.trim().length <= max) { return false; }
    var template = counter.getAttribute("data-too-long") || "";
    showError(template.replace("{count}", formatCount(area.value.trim().length)));
    area.setAttribute("aria-invalid", "true");
    var describedBy = area.getAttribute("aria-describedby") || "";
    if (describedBy.indexOf("card-notice") < 0) {
      area.setAttribute("aria-describedby", ("card-notice " + describedBy).trim());
    }
    area.focus();
    return true;
  }

  function swap(data, focus) {
    root.innerHTML = data.html;
    if (data.lang) { document.documentElement.lang = data.lang; }
    var brand = document.querySelector(".brand");
    if (brand && data.brand) { brand.textContent = data.brand; }
    var notMe = document.querySelector(".not-me");
    if (notMe) { notMe.hidden = !data.forget; }  // nothing left to forget: no "Not you?"
    // The words outside the card follow its language (a switch mid-survey, no reload).
    var words = data.words || {};
    if (notMe && words.not_me) { notMe.textContent = words.not_me; }
    var skip = document.querySelector(".skip-link");
    if (skip && words.skip) { skip.textContent = words.skip; }
    if (words.network_error) { document.body.setAttribute("data-network-error", words.network_error); }
    if (words.leave) { document.body.setAttribute("data-leave", words.leave); }
    setupCounters();
    armBack();
    var card = document.getElementById("card");
    if (card && card.getAttribute("data-title")) { document.title = card.getAttribute("data-title"); }
    if (card && focus) {
      // Focus the new card's question (a screen reader reads it out), or the field that
      // needs another try after a notice (its aria-describedby reads the notice).
      var invalid = card.querySelector("[aria-invalid=true]");
      var target = invalid || document.getElementById("card-text") || card;
      target.focus({ preventScroll: true });
      window.scrollTo(0, 0);
    }
  }

  // The phone's Back button: one history entry above the page while a question is open, so
  // that Back goes to the previous question (the card's own Back), and on the first one asks
  // before leaving (a second Back leaves). Armed only after a tap or a key (browsers skip
  // entries that a page adds without one).
  var guarded = false;

  function openCard() {
    var card = document.getElementById("card");
    return card && !card.classList.contains("is-final") ? card : null;
  }

  function armBack() {
    if (mode !== "web" || guarded || !window.history || !history.pushState) { return; }
    if (!openCard()) { return; }
    history.pushState({ gsCard: 1 }, "", window.location.href);
    guarded = true;
  }

  function onPopState() {
    if (!guarded) { return; }  // not our entry: let the browser go
    guarded = false;
    var card = openCard();
    if (!card) { history.back(); return; }
    var back = card.querySelector('form.nav button[name="choice"][value="back"]');
    if (back && !busy) {
      back.click();  // posts Back; the next card arms the entry again
      return;
    }
    showError(body.getAttribute("data-leave") || "");
  }

  function showError(message) {
    var card = document.getElementById("card");
    var area = card && card.querySelector(".notice-area");
    if (!area) {
      area = document.createElement("div");
      area.className = "notice-area";
      if (card) { card.insertBefore(area, card.firstChild); } else { root.appendChild(area); }
    }
    var p = document.createElement("p");
    p.className = "notice";
    p.id = "card-notice";
    p.setAttribute("role", "alert");
    p.textContent = message;
    area.innerHTML = "";
    area.appendChild(p);
  }

  function setBusy(on) {
    busy = on;
    if (on) { root.setAttribute("aria-busy", "true"); } else { root.removeAttribute("aria-busy"); }
  }

  function fieldsOf(form, submitter) {
    var fd = new FormData(form);
    if (submitter && submitter.name) { fd.append(submitter.name, submitter.value); }
    return fd;
  }

  function readJson(response) {
    return response.json().then(function (data) {
      if (!response.ok) {
        var err = new Error(data && data.message ? data.message : "HTTP " + response.status);
        err.fromServer = true;
        throw err;
      }
      return data;
    });
  }

  function postWeb(form, submitter) {
    return fetch(form.action, {
      method: "POST",
      body: fieldsOf(form, submitter),
      credentials: "same-origin",
      headers: { "Accept": "application/json" }
    }).then(readJson);
  }

  function postApp(url, fields) {
    return fetch(url, {
      method: "POST",
      credentials: "omit",
      headers: {
        "Accept": "application/json",
        "Content-Type": "application/json",
        "X-Telegram-Init-Data": initData
      },
      body: JSON.stringify(fields)
    }).then(readJson);
  }

  function onSubmit(event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || !root.contains(form)) { return; }
    event.preventDefault();
    if (busy) { return; }
    var submitter = event.submitter || null;
    if (form.classList.contains("typed") && refuseTooLong(form)) { return; }
    var request;
    if (mode === "app") {
      var fields = {};
      fieldsOf(form, submitter).forEach(function (value, key) {
        if (key !== "csrf") { fields[key] = String(value); }
      });
      request = postApp(body.getAttribute("data-answer-url"), fields);
    } else {
      request = postWeb(form, submitter);
    }
    setBusy(true);
    request.then(function (data) {
      setBusy(false);
      swap(data, true);
    }).catch(function (err) {
      setBusy(false);
      if (mode !== "app" && !err.fromServer) {
        // Network trouble or an odd answer: fall back to the plain form post.
        form.removeEventListener("submit", onSubmit);
        root.removeEventListener("submit", onSubmit);
        if (submitter && form.requestSubmit) { form.requestSubmit(submitter); } else { form.submit(); }
        return;
      }
      showError(err.fromServer ? err.message : body.getAttribute("data-network-error"));
    });
  }

  function startMiniApp() {
    var tg = window.Telegram && window.Telegram.WebApp;
    if (tg) {
      if (tg.ready) { tg.ready(); }
      if (tg.expand) { tg.expand(); }
    }
    initData = readInitData();
    // Outside Telegram (or no bot here): the page already explains and offers the web chat.
    if (!initData || !body.getAttribute("data-state-url")) { return; }
    var outside = root.querySelector(".outside");
    if (outside) { outside.hidden = true; }
    var title = document.getElementById("card-text");
    if (title && title.getAttribute("data-loading")) {
      title.textContent = title.getAttribute("data-loading");
    }
    setBusy(true);
    postApp(body.getAttribute("data-state-url"), {}).then(function (data) {
      setBusy(false);
      swap(data, false);
    }).catch(function (err) {
      setBusy(false);
      if (title) {
        title.textContent = err.fromServer ? err.message : body.getAttribute("data-network-error");
      }
    });
  }

  root.addEventListener("submit", onSubmit);
  if (mode === "web") {
    window.addEventListener("popstate", onPopState);
    document.addEventListener("pointerdown", armBack, true);
    document.addEventListener("keydown", armBack, true);
  }
  setupCounters();
  if (mode === "app") { startMiniApp(); }
}());
