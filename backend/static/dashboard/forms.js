// One-time form tokens survive Back. A sent form's token is kept for this tab
// (sessionStorage); when the page comes back through the history (Back, Forward), each form
// gets the token it sent before, so sending it again is recognised by the server and done
// once (backend/dashboard/once.py). Without JavaScript the server still refuses a resent token.
(() => {
  const FIELD = 'submission';
  const key = (form) => {
    const action = new URL(form.getAttribute('action') || location.href, location.href);
    return `once:${location.pathname}|${action.pathname}`;
  };
  const tokenOf = (form) => {
    const input = form.querySelector(`input[type=hidden][name=${FIELD}]`);
    if (input) return input.value;
    const action = new URL(form.action, location.href); // a multipart form: in its query
    return action.searchParams.get(FIELD);
  };
  const setToken = (form, token) => {
    const input = form.querySelector(`input[type=hidden][name=${FIELD}]`);
    if (input) {
      input.value = token;
      return;
    }
    const action = new URL(form.action, location.href);
    if (action.searchParams.has(FIELD)) {
      action.searchParams.set(FIELD, token);
      form.setAttribute('action', action.pathname + action.search);
    }
  };
  document.addEventListener('submit', (event) => {
    const form = event.target;
    const token = form instanceof HTMLFormElement ? tokenOf(form) : null;
    if (token) {
      try { sessionStorage.setItem(key(form), token); } catch (e) { /* storage off: no matter */ }
    }
  }, true);
  const nav = performance.getEntriesByType('navigation')[0];
  const restore = () => {
    for (const form of document.querySelectorAll('form')) {
      let sent = null;
      try { sent = sessionStorage.getItem(key(form)); } catch (e) { sent = null; }
      if (sent && tokenOf(form)) setToken(form, sent);
    }
  };
  if (nav && nav.type === 'back_forward') restore();
  window.addEventListener('pageshow', (event) => { if (event.persisted) restore(); });
})();
