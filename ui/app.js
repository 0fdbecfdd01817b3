// hookd dashboard: a small single-page app over the JSON API under /api/hooks/, and, for an
// admin token, the operator page over /api/admin/overview.
//
// Rules this file keeps, because the page is served with a strict Content-Security-Policy
// and shows data that receivers control (response bodies, error texts):
// - API data reaches the DOM only as text (textContent / text nodes), never as HTML.
// - No inline styles: no style attributes and no el.style either; looks come from classes
//   in app.css, and the chart's geometry from SVG attributes (x, y, width, height).
// - The user token lives in sessionStorage only, is sent only as a bearer header, and
//   never appears in a URL.
'use strict';

(function () {
  // ---------------------------------------------------------------------------------
  // Constants

  const TOKEN_KEY = 'hookd.userToken';
  // 'user' (the webhook pages) or 'admin' (the operator page), as found at sign-in.
  const ROLE_KEY = 'hookd.role';
  const CATALOG = [
    { group: 'app', label: 'App connection', types: ['app:connecting', 'app:connected', 'app:disconnected', 'app:health_warning', 'app:health_cleared', 'app:health_check'] },
    { group: 'message', label: 'Messages', types: ['message:received', 'message:sending', 'message:sent'] },
    { group: 'agent', label: 'Agent', types: ['agent:invoked', 'agent:response', 'agent:error'] },
  ];
  const ALL_TYPES = CATALOG.flatMap((g) => g.types);
  const DELIVERY_STATUSES = ['pending', 'succeeded', 'failed', 'cancelled'];
  const STATUS_LABEL = {
    healthy: 'Healthy', failing: 'Failing', disabled: 'Disabled',
    pending: 'Pending', succeeded: 'Succeeded', failed: 'Failed', cancelled: 'Cancelled',
    held: 'Held', sent: 'Sent', skipped: 'Skipped', ok: 'OK', degraded: 'Degraded',
  };
  const NOTIFICATION_LABEL = {
    'webhook.failing': 'Failing', 'webhook.disabled': 'Disabled', 'webhook.recovered': 'Recovered',
  };
  const OPERATOR_REFRESH_MS = 5000;
  const PAGE_SIZE = 20;
  const POLL_MS = 1000;
  const SVG_NS = 'http://www.w3.org/2000/svg';

  // ---------------------------------------------------------------------------------
  // Small DOM helpers. `h` builds an element; attributes named on* become listeners,
  // `text` sets textContent, `dataset` fills data-*; children may be strings or nodes.

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    applyAttrs(el, attrs);
    append(el, children);
    return el;
  }

  function s(tag, attrs, ...children) {
    const el = document.createElementNS(SVG_NS, tag);
    applyAttrs(el, attrs);
    append(el, children);
    return el;
  }

  function applyAttrs(el, attrs) {
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === 'style') throw new Error('inline style attributes are not allowed (CSP)');
      if (key === 'text') el.textContent = value;
      else if (key === 'dataset') Object.assign(el.dataset, value);
      else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
      else if (value === true) el.setAttribute(key, '');
      else el.setAttribute(key, String(value));
    }
  }

  function append(el, children) {
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }

  const $ = (sel, root) => (root || document).querySelector(sel);
  const main = () => document.getElementById('main');

  let idCounter = 0;
  const uid = (prefix) => `${prefix}-${++idCounter}`;

  // ---------------------------------------------------------------------------------
  // Session: the token and its role, kept for this tab only.

  const session = {
    get token() { return sessionStorage.getItem(TOKEN_KEY); },
    get admin() { return sessionStorage.getItem(ROLE_KEY) === 'admin'; },
    set(token, role) { sessionStorage.setItem(TOKEN_KEY, token); sessionStorage.setItem(ROLE_KEY, role); },
    clear() { sessionStorage.removeItem(TOKEN_KEY); sessionStorage.removeItem(ROLE_KEY); },
  };

  // The first page of the signed-in role.
  const home = () => (session.admin ? '#/operator' : '#/webhooks');

  // ---------------------------------------------------------------------------------
  // API: fetch with the bearer token; error answers {"error","code"} become ApiError.

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
    describe() {
      return this.code ? `${this.message} (${this.status} ${this.code})` : this.message;
    }
  }

  async function api(method, path, body, token) {
    const headers = { Accept: 'application/json' };
    const bearer = token || session.token;
    if (bearer) headers.Authorization = `Bearer ${bearer}`;
    const init = { method, headers, cache: 'no-store', credentials: 'omit' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, 'network_error', `Could not reach hookd: ${e.message}`);
    }
    if (res.status === 204) return null;
    const text = await res.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch (_) { data = null; }
    }
    if (!res.ok) {
      const message = data && typeof data.error === 'string' ? data.error : `HTTP ${res.status}`;
      const err = new ApiError(res.status, data && data.code, message);
      // A token that stops working (removed from the config) ends the session.
      if (res.status === 401 && !token) sessionRefused(bearer);
      throw err;
    }
    return data;
  }

  // Ends the session once, however many requests were refused with it: later 401s for the
  // same token find it gone (or replaced by a new sign-in) and do nothing. The address stays,
  // so signing in again returns to the page the user was on.
  function sessionRefused(bearer) {
    if (!bearer || session.token !== bearer) return;
    session.clear();
    flash('error', 'Your token was not accepted any more; please sign in again.');
    route();
  }

  const enc = encodeURIComponent;
  const hookPath = (id) => `/api/hooks/webhooks/${enc(id)}`;

  // ---------------------------------------------------------------------------------
  // Flash messages (one area under the top bar). A message goes away on the next change of
  // address, unless it announces that very navigation: `keepOnNavigate` lets it survive one.

  let flashKeep = false;

  function flash(kind, message, options) {
    const { keepOnNavigate = false } = options || {};
    const area = document.getElementById('flash');
    flashKeep = keepOnNavigate;
    const box = h('div', {
      class: `flash flash-${kind}`,
      role: kind === 'error' ? 'alert' : 'status',
      'data-testid': `flash-${kind}`,
    },
    h('span', { class: 'flash-text', text: message }),
    h('button', { type: 'button', class: 'btn btn-quiet btn-small', 'aria-label': 'Dismiss message', text: 'Dismiss', onclick: () => box.remove() }));
    area.replaceChildren(box);
    return box;
  }

  function clearFlash() {
    flashKeep = false;
    document.getElementById('flash').replaceChildren();
  }

  function onNavigate() {
    if (flashKeep) flashKeep = false;
    else clearFlash();
  }

  function errorText(e) {
    return e instanceof ApiError ? e.describe() : String(e && e.message ? e.message : e);
  }

  // ---------------------------------------------------------------------------------
  // Formatting

  function fmtTime(iso) {
    if (!iso) return '—';
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return iso;
    return d.toLocaleString(undefined, { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' });
  }

  function fmtAgo(iso) {
    if (!iso) return 'never';
    const secs = Math.round((Date.now() - new Date(iso).getTime()) / 1000);
    if (secs < 5) return 'just now';
    if (secs < 60) return `${secs} s ago`;
    const mins = Math.round(secs / 60);
    if (mins < 60) return `${mins} min ago`;
    const hours = Math.round(mins / 60);
    if (hours < 48) return `${hours} h ago`;
    return fmtTime(iso);
  }

  function timeEl(iso, relative) {
    if (!iso) return h('span', { class: 'muted', text: relative ? 'never' : '—' });
    return h('time', { datetime: iso, title: iso, text: relative ? fmtAgo(iso) : fmtTime(iso) });
  }

  function fmtRate(rate) {
    if (rate === null || rate === undefined) return '—';
    const pct = rate * 100;
    return `${pct === 100 || pct === 0 ? pct.toFixed(0) : pct.toFixed(1)}%`;
  }

  function badge(status, testid) {
    return h('span', { class: `badge badge-${status}`, 'data-testid': testid || 'status-badge', 'data-status': status },
      h('span', { class: 'badge-dot', 'aria-hidden': 'true' }),
      STATUS_LABEL[status] || status);
  }

  function eventTypeChips(types) {
    return h('ul', { class: 'chips', 'aria-label': 'Event types' },
      types.map((t) => h('li', { class: 'chip', text: t === '*' ? '* (all events)' : t })));
  }

  const ORDERING_LABEL = {
    none: 'Any order: deliveries go side by side',
    fifo: 'FIFO: one delivery at a time, in the order the events arrived',
  };

  // The delivery order and the custom headers, by name only: the API never returns a
  // header's value, and neither does the page.
  function hookSettings(hook) {
    const names = Object.keys(hook.headers || {});
    return h('dl', { class: 'facts hook-settings' },
      h('dt', { text: 'Order' }),
      h('dd', { 'data-testid': 'webhook-ordering', 'data-ordering': hook.ordering, text: ORDERING_LABEL[hook.ordering] || hook.ordering }),
      h('dt', { text: 'Custom headers' }),
      h('dd', { 'data-testid': 'webhook-headers' }, names.length
        ? h('ul', { class: 'header-names' }, names.map((n) => h('li', { 'data-testid': 'webhook-header' },
          h('code', { text: n }), ': ', h('span', { class: 'muted', text: hook.headers[n] }))))
        : h('span', { class: 'muted', text: 'none' })));
  }

  // The local value of a datetime-local input for a Date.
  function toLocalInput(date) {
    const pad = (n) => String(n).padStart(2, '0');
    return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
  }

  // ---------------------------------------------------------------------------------
  // Routing. Each render gets a fresh "view" whose timers stop when the route changes,
  // and async work checks view.alive before touching the page.

  let currentView = null;
  let nextFocus = null;

  function newView() {
    if (currentView) currentView.dispose();
    const timers = new Set();
    const view = {
      alive: true,
      // A selector to focus after rendering instead of the heading (see rerender).
      focusHint: nextFocus,
      later(fn, ms) {
        const t = setTimeout(() => { timers.delete(t); if (view.alive) fn(); }, ms);
        timers.add(t);
      },
      dispose() { view.alive = false; timers.forEach(clearTimeout); timers.clear(); },
    };
    nextFocus = null;
    currentView = view;
    return view;
  }

  // Renders the current page again and then focuses `selector` (the control that asked for
  // it, say), so that keyboard users keep their place.
  function rerender(selector) {
    nextFocus = selector || null;
    route();
  }

  function navigate(hash) {
    if (location.hash === hash) {
      onNavigate(); // no hashchange event will come
      route();
    } else {
      location.hash = hash;
    }
  }

  function route() {
    const hash = location.hash || '#/webhooks';
    let parts;
    try {
      parts = hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
    } catch (_) {
      parts = null; // a malformed escape such as %E0: no page has that address
    }
    const signedIn = Boolean(session.token);
    document.getElementById('session').hidden = !signedIn;
    document.getElementById('session-label').textContent = session.admin ? 'Signed in as operator' : 'Signed in';
    const view = newView();
    if (!parts) return signedIn ? renderNotFound(view) : renderSignIn(view);
    if (!signedIn || parts[0] === 'signin') {
      if (signedIn) return navigate(home());
      return renderSignIn(view);
    }
    // An admin token opens the operator page only; a user token everything else.
    if (session.admin) return parts.length === 1 && parts[0] === 'operator' ? renderOperator(view) : navigate('#/operator');
    if (parts[0] !== 'webhooks') return navigate('#/webhooks');
    if (parts.length === 1) return renderWebhookList(view);
    if (parts[1] === 'new') return renderWebhookForm(view, null);
    if (parts.length === 2) return renderWebhookDetail(view, parts[1]);
    if (parts[2] === 'edit' && parts.length === 3) return renderWebhookForm(view, parts[1]);
    if (parts[2] === 'deliveries' && parts.length === 4) return renderDeliveryPage(view, parts[1], parts[3]);
    return renderNotFound(view);
  }

  function setPage(title, ...children) {
    document.title = `${title} · hookd`;
    const m = main();
    m.replaceChildren(...children.flat().filter(Boolean));
  }

  // Focus for a freshly rendered page: the view's focus hint if it is on the page, else the
  // page's heading. Only for a first render or a user's action, never for a background
  // refresh.
  function focusMain(view) {
    const target = view && view.focusHint && $(view.focusHint, main());
    if (target) { target.focus(); return; }
    const heading = $('h1', main());
    if (heading) { heading.setAttribute('tabindex', '-1'); heading.focus({ preventScroll: true }); }
  }

  // Replaces `oldEl` by `newEl`. If focus was inside, it moves to the element with the same
  // data-testid in the new one, else to its first control, else to `fallback()`.
  function swapKeepingFocus(oldEl, newEl, fallback) {
    const active = document.activeElement;
    const had = active && active !== document.body && oldEl.contains(active);
    const testid = had && active.getAttribute('data-testid');
    oldEl.replaceWith(newEl);
    if (!had) return;
    const target = (testid && $(`[data-testid="${testid}"]`, newEl)) || $('button:not([disabled]), a[href], [tabindex="0"]', newEl);
    if (target) target.focus({ preventScroll: true });
    else if (fallback) fallback();
  }

  // For async answers of which only the newest counts: `const current = latest();` before
  // the request, `if (!current()) return;` after it.
  function latestOnly() {
    let n = 0;
    return () => {
      const mine = ++n;
      return () => mine === n;
    };
  }

  // ---------------------------------------------------------------------------------
  // Sign-in

  function renderSignIn(view) {
    const input = h('input', { id: 'token', name: 'token', type: 'password', required: true, autocomplete: 'off', spellcheck: 'false', 'aria-describedby': 'token-help', 'data-testid': 'token-input' });
    const error = h('p', { class: 'form-error', id: 'signin-error', role: 'alert', 'data-testid': 'signin-error', hidden: true });
    const submit = h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'sign-in', text: 'Sign in' });
    const form = h('form', { class: 'card signin', novalidate: true, 'aria-labelledby': 'signin-title' },
      h('h1', { id: 'signin-title', text: 'Sign in to hookd' }),
      h('p', { class: 'muted', text: 'Manage your webhooks and read their delivery logs.' }),
      h('div', { class: 'field' },
        h('label', { for: 'token', text: 'User API token' }),
        input,
        h('p', { class: 'help', id: 'token-help', text: 'A token with the role "user" from the hookd config (an "admin" token opens the operator view). It is kept in this browser tab only and forgotten when you sign out or close the tab.' })),
      error,
      h('div', { class: 'actions' }, submit));

    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const token = input.value.trim();
      error.hidden = true;
      if (!token) {
        error.textContent = 'Enter a token.';
        error.hidden = false;
        input.focus();
        return;
      }
      submit.disabled = true;
      submit.textContent = 'Checking…';
      try {
        const role = await tokenRole(token);
        session.set(token, role);
        input.value = '';
        clearFlash();
        // Back to the page that asked for a sign-in, if it was one of this role's pages.
        const back = role === 'admin' ? /^#\/operator$/ : /^#\/webhooks/;
        navigate(back.test(location.hash) ? location.hash : home());
      } catch (e) {
        if (!view.alive) return;
        if (e.status === 401) error.textContent = 'This token was not accepted (401 unauthorized). Check that it is copied completely and listed in the hookd config.';
        else if (e.status === 403) error.textContent = 'This token belongs to another role (403 forbidden). The dashboard needs a token with the role "user" (or "admin" for the operator view), not a publisher token.';
        else error.textContent = `Sign-in failed: ${errorText(e)}`;
        error.hidden = false;
        input.focus();
        input.select();
      } finally {
        submit.disabled = false;
        submit.textContent = 'Sign in';
      }
    });
    setPage('Sign in', form);
    input.focus();
  }

  // 'user' or 'admin': which of the two APIs the token may read. A user token is tried
  // first; a 403 there means another role, so the operator view is tried next.
  async function tokenRole(token) {
    try {
      await api('GET', '/api/hooks/webhooks', undefined, token);
      return 'user';
    } catch (e) {
      if (e.status !== 403) throw e;
    }
    await api('GET', '/api/admin/overview?limit=1', undefined, token);
    return 'admin';
  }

  function signOut() {
    session.clear();
    clearFlash();
    flash('info', 'Signed out. The token was removed from this tab.', { keepOnNavigate: true });
    navigate('#/signin');
  }

  // ---------------------------------------------------------------------------------
  // Stats and the attempts chart

  function fetchStats(id) {
    return api('GET', `${hookPath(id)}/stats?window=1h`).catch((e) => ({ unavailable: true, error: e }));
  }

  // Stacked bars, one per minute: succeeded at the bottom, then failed, then errored.
  function attemptsChart(stats) {
    const series = stats.series || [];
    const n = Math.max(series.length, 1);
    const W = 600;
    const H = 64;
    const slot = W / n;
    const barW = Math.max(slot * 0.72, 1);
    const max = Math.max(1, ...series.map((m) => m.succeeded + m.failed + m.errored));
    const titleId = uid('chart-title');
    const descId = uid('chart-desc');
    const summary = `Attempts per minute over the last ${stats.window || 'hour'}: ${stats.attempts} in all, ${stats.succeeded} succeeded, ${stats.failed} failed, ${stats.errored} errored${stats.attempts ? `; busiest minute ${max}` : ''}.`;
    const svg = s('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none', role: 'img', 'aria-labelledby': `${titleId} ${descId}`, 'data-testid': 'attempts-chart' },
      s('title', { id: titleId, text: 'Attempts per minute by outcome' }),
      s('desc', { id: descId, text: summary }),
      s('line', { class: 'chart-base', x1: 0, y1: H - 0.5, x2: W, y2: H - 0.5 }));
    series.forEach((m, i) => {
      const total = m.succeeded + m.failed + m.errored;
      if (!total) return;
      const g = s('g', { class: 'chart-bar' },
        s('title', { text: `${fmtTime(m.at)}: ${m.succeeded} succeeded, ${m.failed} failed, ${m.errored} errored` }));
      let y = H;
      for (const [key, cls] of [['succeeded', 'seg-ok'], ['failed', 'seg-failed'], ['errored', 'seg-errored']]) {
        if (!m[key]) continue;
        const hgt = (m[key] / max) * (H - 4);
        y -= hgt;
        g.append(s('rect', { class: cls, x: (i * slot + (slot - barW) / 2).toFixed(2), y: y.toFixed(2), width: barW.toFixed(2), height: hgt.toFixed(2) }));
      }
      svg.append(g);
    });
    return h('figure', { class: 'chart-figure' },
      svg,
      h('figcaption', { class: 'chart-caption' },
        h('span', { class: 'chart-axis', text: `${stats.window || '1h'} ago` }),
        h('span', { class: 'legend' },
          h('span', { class: 'legend-item' }, h('span', { class: 'swatch seg-ok', 'aria-hidden': 'true' }), 'succeeded'),
          h('span', { class: 'legend-item' }, h('span', { class: 'swatch seg-failed', 'aria-hidden': 'true' }), 'failed'),
          h('span', { class: 'legend-item' }, h('span', { class: 'swatch seg-errored', 'aria-hidden': 'true' }), 'errored')),
        h('span', { class: 'chart-axis', text: 'now' })));
  }

  function statTile(label, value, testid, title) {
    return h('div', { class: 'stat' },
      h('dt', { text: label }),
      h('dd', { 'data-testid': testid, title }, value));
  }

  function statsBlock(stats) {
    if (!stats || stats.unavailable) {
      return h('div', { class: 'stats-unavailable', 'data-testid': 'stats-unavailable' },
        h('p', { class: 'muted', text: 'Stats unavailable' }),
        stats && stats.error && stats.error.status !== 404 ? h('p', { class: 'help', text: errorText(stats.error) }) : null);
    }
    const latency = stats.latencyMs ? `${stats.latencyMs.p50} ms / ${stats.latencyMs.p99} ms` : '—';
    return h('div', { class: 'stats', 'data-testid': 'stats' },
      h('dl', { class: 'stat-grid' },
        statTile('Success (1 h)', fmtRate(stats.successRate), 'success-rate', stats.attempts ? `${stats.succeeded} of ${stats.attempts} attempts succeeded` : 'No attempts in the last hour'),
        statTile('Latency p50 / p99', latency, 'latency'),
        statTile('Attempts (1 h)', String(stats.attempts), 'attempt-count', `${stats.succeeded} succeeded, ${stats.failed} failed, ${stats.errored} errored`),
        statTile('Last attempt', timeEl(stats.lastAttemptAt, true), 'last-attempt')),
      attemptsChart(stats));
  }

  // ---------------------------------------------------------------------------------
  // Webhook actions shared by the list and the detail view

  function webhookActions(hook, onChange, compact) {
    const bar = h('div', { class: 'actions', role: 'group', 'aria-label': `Actions for ${hook.name}` });
    if (compact) {
      bar.append(h('a', { class: 'btn btn-primary', href: `#/webhooks/${enc(hook.id)}`, 'data-testid': 'open-webhook', text: 'Deliveries' }));
    }
    bar.append(
      h('a', { class: 'btn', href: `#/webhooks/${enc(hook.id)}/edit`, 'data-testid': 'edit-webhook', text: 'Edit' }),
      h('button', {
        type: 'button', class: 'btn', 'data-testid': 'toggle-enabled',
        text: hook.enabled ? 'Disable' : 'Enable',
        onclick: (ev) => toggleEnabled(hook, ev.currentTarget, onChange),
      }),
      h('button', { type: 'button', class: 'btn', 'data-testid': 'rotate-secret', text: 'Rotate secret', onclick: () => rotateSecretDialog(hook) }),
      h('button', { type: 'button', class: 'btn btn-danger', 'data-testid': 'delete-webhook', text: 'Delete', onclick: () => deleteDialog(hook, onChange) }));
    return bar;
  }

  async function toggleEnabled(hook, button, onChange) {
    button.disabled = true;
    try {
      const updated = await api('PATCH', hookPath(hook.id), { enabled: !hook.enabled });
      flash('success', updated.enabled
        ? `“${updated.name}” is enabled again; new events are delivered to it.`
        : `“${updated.name}” is disabled; its pending deliveries were cancelled.`);
      onChange('toggled');
    } catch (e) {
      flash('error', `Could not update “${hook.name}”: ${errorText(e)}`);
      button.disabled = false;
      button.focus();
    }
  }

  // A modal <dialog>; `build(close, lock)` returns the body; resolves when it closes.
  // `lock()` stops Esc from closing it (for a secret shown once: only its button may close
  // it). Besides `cancel`, the Esc keydown itself is cancelled, because Chromium lets a
  // second Esc without a click in between close a dialog whose `cancel` was prevented.
  function openDialog(title, build, testid) {
    return new Promise((resolve) => {
      const titleId = uid('dialog-title');
      const dialog = h('dialog', { class: 'dialog', 'aria-labelledby': titleId, 'data-testid': testid || 'dialog' });
      let result;
      let locked = false;
      const close = (value) => { result = value; dialog.close(); };
      const lock = () => { locked = true; };
      dialog.addEventListener('cancel', (e) => { if (locked) e.preventDefault(); });
      dialog.addEventListener('keydown', (e) => { if (locked && e.key === 'Escape') e.preventDefault(); });
      dialog.append(h('h2', { id: titleId, text: title }), build(close, lock));
      dialog.addEventListener('close', () => { dialog.remove(); resolve(result); });
      document.body.append(dialog);
      dialog.showModal();
    });
  }

  function secretReveal(secret, what) {
    const field = h('input', { id: uid('secret'), class: 'secret', type: 'text', readonly: true, value: secret, 'aria-label': 'Signing secret', 'data-testid': 'secret-value', spellcheck: 'false' });
    const status = h('span', { class: 'help', role: 'status' });
    const copy = h('button', {
      type: 'button', class: 'btn', 'data-testid': 'copy-secret', text: 'Copy',
      onclick: async () => {
        field.select();
        try {
          await navigator.clipboard.writeText(secret);
          status.textContent = 'Copied to the clipboard.';
        } catch (_) {
          status.textContent = 'Selected: press Ctrl+C (⌘C) to copy.';
        }
      },
    });
    return h('div', { class: 'secret-box' },
      h('p', { class: 'secret-warning', text: `This is the ${what}. Copy it now: hookd never shows it again.` }),
      h('div', { class: 'secret-row' }, field, copy),
      status,
      h('p', { class: 'help', text: 'Store it where your receiver reads it (for example WEBHOOK_SECRET) and verify the X-Hook-Signature or webhook-signature header of every delivery with it.' }));
  }

  function rotateSecretDialog(hook) {
    return openDialog(`Rotate the secret of “${hook.name}”`, (close, lock) => {
      const selectId = uid('grace');
      const select = h('select', { id: selectId, 'data-testid': 'grace-select' },
        h('option', { value: '0', text: 'None: the old secret stops at once' }),
        h('option', { value: '3600', text: '1 hour' }),
        h('option', { value: '86400', selected: true, text: '24 hours (default)' }),
        h('option', { value: '604800', text: '7 days' }));
      const body = h('div', { class: 'dialog-body' });
      const error = h('p', { class: 'form-error', role: 'alert', hidden: true });
      const confirm = h('button', { type: 'button', class: 'btn btn-primary', 'data-testid': 'confirm-rotate', text: 'Rotate secret' });
      const cancel = h('button', { type: 'button', class: 'btn', text: 'Cancel', onclick: () => close(false) });
      const actions = h('div', { class: 'actions actions-end' }, cancel, confirm);
      body.append(
        h('p', { text: 'hookd generates a new secret. During the grace period deliveries carry signatures by both the old and the new secret in webhook-signature, so your receiver can switch at its own pace; X-Hook-Signature uses the new secret at once.' }),
        h('div', { class: 'field' }, h('label', { for: selectId, text: 'Grace period for the old secret' }), select),
        error, actions);
      confirm.addEventListener('click', async () => {
        confirm.disabled = true;
        error.hidden = true;
        try {
          const answer = await api('POST', `${hookPath(hook.id)}/rotate-secret`, { graceSeconds: Number(select.value) });
          lock();
          body.replaceChildren(secretReveal(answer.secret, 'new signing secret'),
            h('div', { class: 'actions actions-end' }, h('button', { type: 'button', class: 'btn btn-primary', 'data-testid': 'secret-done', text: 'Done', onclick: () => close(true) })));
          // The button that had focus is gone; the secret is what to act on now.
          $('[data-testid="secret-value"]', body).focus();
        } catch (e) {
          error.textContent = errorText(e);
          error.hidden = false;
          confirm.disabled = false;
        }
      });
      return body;
    }, 'rotate-dialog');
  }

  function deleteDialog(hook, onChange) {
    return openDialog(`Delete “${hook.name}”?`, (close) => {
      const error = h('p', { class: 'form-error', role: 'alert', hidden: true });
      const confirm = h('button', { type: 'button', class: 'btn btn-danger', 'data-testid': 'confirm-delete', text: 'Delete webhook' });
      const cancel = h('button', { type: 'button', class: 'btn', text: 'Keep it', onclick: () => close(false) });
      confirm.addEventListener('click', async () => {
        confirm.disabled = true;
        try {
          await api('DELETE', hookPath(hook.id));
          close(true);
          flash('success', `Deleted “${hook.name}”. Its pending deliveries were cancelled.`, { keepOnNavigate: true });
          onChange('deleted');
        } catch (e) {
          error.textContent = errorText(e);
          error.hidden = false;
          confirm.disabled = false;
        }
      });
      const body = h('div', { class: 'dialog-body' },
        h('p', {}, 'Deliveries to ', h('code', { text: hook.url }), ' stop at once, pending ones are cancelled, and its delivery log is no longer available. This cannot be undone.'),
        error,
        h('div', { class: 'actions actions-end' }, cancel, confirm));
      queueMicrotask(() => cancel.focus());
      return body;
    }, 'delete-dialog');
  }

  // ---------------------------------------------------------------------------------
  // Webhooks list

  async function renderWebhookList(view) {
    const list = h('div', { class: 'webhook-list', 'data-testid': 'webhook-list', 'aria-busy': 'true' }, h('p', { class: 'loading', text: 'Loading webhooks…' }));
    const refresh = h('button', { type: 'button', class: 'btn', 'data-testid': 'refresh', text: 'Refresh', onclick: () => rerender('[data-testid="refresh"]') });
    setPage('Webhooks',
      h('div', { class: 'page-head' },
        h('div', {},
          h('h1', { text: 'Webhooks' }),
          h('p', { class: 'muted', text: 'Endpoints that receive your events, with their health over the last hour.' })),
        h('div', { class: 'actions' }, refresh,
          h('a', { class: 'btn btn-primary', href: '#/webhooks/new', 'data-testid': 'new-webhook', text: 'New webhook' }))),
      list);
    focusMain(view);
    let hooks;
    try {
      hooks = await api('GET', '/api/hooks/webhooks');
    } catch (e) {
      if (!view.alive) return;
      list.replaceChildren(h('p', { class: 'form-error', role: 'alert', text: `Could not load webhooks: ${errorText(e)}` }));
      return;
    }
    if (!view.alive) return;
    list.removeAttribute('aria-busy');
    if (!hooks.length) {
      list.replaceChildren(h('div', { class: 'card empty', 'data-testid': 'empty-list' },
        h('h2', { text: 'No webhooks yet' }),
        h('p', { class: 'muted', text: 'Create one to have hookd send signed HTTP POSTs to your endpoint whenever a matching event arrives.' }),
        h('a', { class: 'btn btn-primary', href: '#/webhooks/new', text: 'Create a webhook' })));
      return;
    }
    const cards = hooks.map((hook) => webhookCard(hook));
    list.replaceChildren(...cards.map((c) => c.el));
    if (view.focusHint) focusMain(view);
    // Stats load per webhook, in parallel, without holding up the list.
    await Promise.all(cards.map(async (c) => {
      const stats = await fetchStats(c.hook.id);
      if (view.alive) c.setStats(stats);
    }));
  }

  function webhookCard(hook) {
    const statsSlot = h('div', { class: 'stats-slot', 'aria-busy': 'true' }, h('p', { class: 'loading', text: 'Loading stats…' }));
    const titleId = uid('hook-title');
    const el = h('article', { class: `card webhook-card status-${hook.status}`, 'data-testid': 'webhook-card', 'data-webhook-id': hook.id, 'aria-labelledby': titleId },
      h('div', { class: 'card-head' },
        h('div', { class: 'card-title' },
          h('h2', { id: titleId }, h('a', { href: `#/webhooks/${enc(hook.id)}`, 'data-testid': 'webhook-name', text: hook.name })),
          h('p', { class: 'url', 'data-testid': 'webhook-url', text: hook.url })),
        badge(hook.status)),
      eventTypeChips(hook.eventTypes),
      hook.ordering === 'fifo' ? h('p', { class: 'muted card-note', 'data-testid': 'webhook-fifo', text: 'FIFO: one delivery at a time' }) : null,
      statsSlot,
      webhookActions(hook, (what) => (what === 'deleted'
        ? navigate('#/webhooks')
        : rerender(`[data-webhook-id="${CSS.escape(hook.id)}"] [data-testid="toggle-enabled"]`)), true));
    return {
      el, hook,
      setStats(stats) {
        statsSlot.removeAttribute('aria-busy');
        statsSlot.replaceChildren(statsBlock(stats));
      },
    };
  }

  // ---------------------------------------------------------------------------------
  // Create / edit form

  function eventTypePicker(selected) {
    const chosen = new Set(selected);
    const boxes = [];
    const box = (value, label, extraClass) => {
      const id = uid('et');
      const input = h('input', { type: 'checkbox', id, value, checked: chosen.has(value), 'data-testid': `event-type-${value}` });
      boxes.push(input);
      return h('div', { class: `check ${extraClass || ''}` }, input, h('label', { for: id }, label));
    };
    const fieldset = h('fieldset', { class: 'event-picker', 'aria-describedby': 'event-help' },
      h('legend', { text: 'Event types' }),
      h('p', { class: 'help', id: 'event-help', text: 'Pick single events, a whole group, or every event. A wildcard also covers event types added to its group later.' }),
      box('*', h('span', {}, h('code', { text: '*' }), ' every event'), 'check-all'),
      h('div', { class: 'event-groups' },
        CATALOG.map((g) => h('div', { class: 'event-group' },
          box(`${g.group}:*`, h('span', {}, h('code', { text: `${g.group}:*` }), ` all ${g.group} events`), 'check-group'),
          g.types.map((t) => box(t, h('code', { text: t })))))));

    // A wildcard makes the entries under it redundant: show them as included.
    function sync() {
      const all = boxes.find((b) => b.value === '*').checked;
      for (const b of boxes) {
        if (b.value === '*') continue;
        const group = b.value.split(':')[0];
        const groupBox = boxes.find((x) => x.value === `${group}:*`);
        const covered = all || (b !== groupBox && groupBox.checked);
        b.disabled = covered;
        b.closest('.check').classList.toggle('covered', covered);
      }
    }
    fieldset.addEventListener('change', sync);
    sync();
    return {
      el: fieldset,
      value() { return boxes.filter((b) => b.checked && !b.disabled).map((b) => b.value); },
      focus() { boxes[0].focus(); },
    };
  }

  function sameSet(a, b) {
    const sorted = (xs) => JSON.stringify([...xs].sort());
    return sorted(a) === sorted(b);
  }

  // A secret in the format hookd generates itself: whsec_ and 32 random bytes in base64.
  function generateSecret() {
    const bytes = new Uint8Array(32);
    crypto.getRandomValues(bytes);
    return `whsec_${btoa(String.fromCharCode(...bytes))}`;
  }

  // The custom headers of the form. A new webhook starts with none. An existing one shows
  // its headers by name only (their values never come back from the API); the user keeps
  // them, or replaces the whole set with a new one (empty: none), as the API's PATCH does.
  function headersEditor(current) {
    const names = Object.keys(current || {});
    const rows = h('div', { class: 'header-rows', 'data-testid': 'header-rows' });
    let replacing = names.length === 0;
    function addRow(name, value) {
      const nameInput = h('input', { type: 'text', class: 'header-name', 'aria-label': 'Header name', placeholder: 'Authorization', maxlength: 256, autocomplete: 'off', spellcheck: 'false', value: name || '', 'data-testid': 'header-name' });
      const valueInput = h('input', { type: 'password', class: 'header-value', 'aria-label': 'Header value', placeholder: 'value (kept secret)', maxlength: 1024, autocomplete: 'new-password', value: value || '', 'data-testid': 'header-value' });
      const row = h('div', { class: 'header-row', 'data-testid': 'header-row' }, nameInput, valueInput,
        h('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'remove-header', text: 'Remove', 'aria-label': 'Remove this header', onclick: () => { row.remove(); add.focus(); } }));
      rows.append(row);
      return nameInput;
    }
    const add = h('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'add-header', text: 'Add header', onclick: () => addRow().focus() });
    const editor = h('div', { class: 'header-editor', hidden: !replacing }, rows, add);
    const kept = names.length
      ? h('div', { class: 'header-kept', 'data-testid': 'headers-kept' },
        h('p', { class: 'help' }, 'Sent now: ', names.flatMap((n, i) => [i ? ', ' : '', h('code', { text: n })]), ' (values hidden).'),
        h('button', {
          type: 'button', class: 'btn btn-small', 'data-testid': 'replace-headers', text: 'Replace all headers',
          onclick: (ev) => {
            replacing = true;
            ev.currentTarget.closest('.header-kept').hidden = true;
            editor.hidden = false;
            addRow().focus();
          },
        }))
      : null;
    const fieldset = h('fieldset', { class: 'event-picker headers-picker', 'aria-describedby': 'headers-help' },
      h('legend', { text: 'Custom headers' }),
      h('p', { class: 'help', id: 'headers-help', text: 'Sent with every delivery, e.g. an Authorization header your receiver checks. Up to 10; hookd keeps the values secret and never shows them again. Headers hookd sets itself (Content-Type, User-Agent, X-Hook-*, webhook-*, traceparent, …) cannot be used.' }),
      kept, editor);
    return {
      el: fieldset,
      // `undefined` when the set is kept as it is; else the whole new set.
      value() {
        if (!replacing) return undefined;
        const set = {};
        for (const row of rows.querySelectorAll('.header-row')) {
          const name = row.querySelector('.header-name').value.trim();
          const value = row.querySelector('.header-value').value;
          if (name || value) set[name] = value;
        }
        return set;
      },
    };
  }

  async function renderWebhookForm(view, id) {
    const editing = Boolean(id);
    setPage(editing ? 'Edit webhook' : 'New webhook', h('p', { class: 'loading', text: 'Loading…' }));
    let hook = { name: '', url: '', eventTypes: [], headers: {}, ordering: 'none' };
    if (editing) {
      try {
        hook = await api('GET', hookPath(id));
      } catch (e) {
        if (view.alive) setPage('Webhook not found', backLink(), h('p', { class: 'form-error', role: 'alert', text: errorText(e) }));
        return;
      }
      if (!view.alive) return;
    }
    const name = h('input', { id: 'wh-name', name: 'name', type: 'text', required: true, maxlength: 200, value: hook.name, autocomplete: 'off', 'data-testid': 'name-input' });
    const url = h('input', { id: 'wh-url', name: 'url', type: 'url', required: true, value: hook.url, placeholder: 'https://example.com/webhooks/hookd', autocomplete: 'off', spellcheck: 'false', 'aria-describedby': 'url-help', 'data-testid': 'url-input' });
    const picker = eventTypePicker(hook.eventTypes);
    const ordering = h('select', { id: 'wh-ordering', 'aria-describedby': 'ordering-help', 'data-testid': 'ordering-input' },
      h('option', { value: 'none', text: ORDERING_LABEL.none, selected: hook.ordering !== 'fifo' }),
      h('option', { value: 'fifo', text: ORDERING_LABEL.fifo, selected: hook.ordering === 'fifo' }));
    const headers = headersEditor(editing ? hook.headers : null);
    const sign = editing ? null : h('input', { id: 'wh-sign', type: 'checkbox', checked: true, 'data-testid': 'sign-input' });
    const error = h('p', { class: 'form-error', role: 'alert', 'data-testid': 'form-error', hidden: true });
    const submit = h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'save-webhook', text: editing ? 'Save changes' : 'Create webhook' });
    const cancelHref = editing ? `#/webhooks/${enc(id)}` : '#/webhooks';
    const form = h('form', { class: 'card form', novalidate: true },
      h('div', { class: 'field' }, h('label', { for: 'wh-name', text: 'Name' }), name),
      h('div', { class: 'field' },
        h('label', { for: 'wh-url', text: 'Endpoint URL' }), url,
        h('p', { class: 'help', id: 'url-help', text: 'hookd POSTs each matching event here as JSON. Unless the server allows otherwise, it must be https:// and reachable on a public network.' })),
      picker.el,
      h('div', { class: 'field' },
        h('label', { for: 'wh-ordering', text: 'Delivery order' }), ordering,
        h('p', { class: 'help', id: 'ordering-help', text: 'FIFO holds every later delivery while the first one is retried, so one slow or failing receiver means one delivery at a time. A change applies to deliveries not yet started.' })),
      headers.el,
      sign ? h('div', { class: 'check' }, sign, h('label', { for: 'wh-sign', text: 'Sign deliveries with a new secret (recommended; shown once after creating)' })) : null,
      error,
      h('div', { class: 'actions' }, submit, h('a', { class: 'btn', href: cancelHref, text: 'Cancel' })));

    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const body = { name: name.value.trim(), url: url.value.trim(), eventTypes: picker.value(), ordering: ordering.value };
      const headerSet = headers.value();
      if (headerSet !== undefined) body.headers = headerSet;
      const problems = [];
      if (!body.name) problems.push(['Give the webhook a name.', name]);
      if (!body.url) problems.push(['Enter the endpoint URL.', url]);
      if (!body.eventTypes.length) problems.push(['Pick at least one event type.', picker]);
      if (problems.length) {
        error.textContent = problems.map((p) => p[0]).join(' ');
        error.hidden = false;
        problems[0][1].focus();
        return;
      }
      error.hidden = true;
      submit.disabled = true;
      try {
        if (editing) {
          const changes = {};
          if (body.name !== hook.name) changes.name = body.name;
          if (body.url !== hook.url) changes.url = body.url;
          if (!sameSet(body.eventTypes, hook.eventTypes)) changes.eventTypes = body.eventTypes;
          if (body.ordering !== hook.ordering) changes.ordering = body.ordering;
          if (body.headers !== undefined) changes.headers = body.headers;
          await api('PATCH', hookPath(id), changes);
          flash('success', `Saved “${body.name}”.`, { keepOnNavigate: view.alive });
          if (view.alive) navigate(`#/webhooks/${enc(id)}`);
          return;
        }
        const secret = sign.checked ? generateSecret() : null;
        if (secret) body.secret = secret;
        const created = await api('POST', '/api/hooks/webhooks', body);
        // The secret exists only here now: show it even if the user has moved on to another
        // page meanwhile (the dialog is modal over whatever page is showing).
        if (secret) {
          await openDialog(`Created “${created.name}”`, (close, lock) => {
            lock();
            return h('div', { class: 'dialog-body' },
              secretReveal(secret, 'signing secret of this webhook'),
              h('div', { class: 'actions actions-end' }, h('button', { type: 'button', class: 'btn btn-primary', 'data-testid': 'secret-done', text: 'I have copied it', onclick: () => close(true) })));
          }, 'secret-dialog');
        } else {
          flash('success', `Created “${created.name}”. Its deliveries are not signed.`, { keepOnNavigate: view.alive });
        }
        if (view.alive) navigate(`#/webhooks/${enc(created.id)}`);
      } catch (e) {
        if (!view.alive) {
          flash('error', `“${body.name}” was not ${editing ? 'saved' : 'created'}: ${errorText(e)}`);
          return;
        }
        error.textContent = errorText(e);
        error.hidden = false;
        submit.disabled = false;
      }
    });

    setPage(editing ? `Edit ${hook.name}` : 'New webhook',
      backLink(editing ? cancelHref : '#/webhooks', editing ? hook.name : 'Webhooks'),
      h('h1', { text: editing ? `Edit “${hook.name}”` : 'New webhook' }),
      form);
    name.focus();
  }

  function backLink(href, label) {
    return h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' },
      h('a', { href: href || '#/webhooks', 'data-testid': 'back-link' }, '← ', label || 'Webhooks'));
  }

  // ---------------------------------------------------------------------------------
  // Webhook detail: header, stats, tools (test event, recover) and the delivery log

  async function renderWebhookDetail(view, id) {
    setPage('Webhook', backLink(), h('p', { class: 'loading', text: 'Loading webhook…' }));
    let hook;
    try {
      hook = await api('GET', hookPath(id));
    } catch (e) {
      if (view.alive) setPage('Webhook not found', backLink(), h('p', { class: 'form-error', role: 'alert', 'data-testid': 'load-error', text: `Could not load this webhook: ${errorText(e)}` }));
      return;
    }
    if (!view.alive) return;

    const head = h('div', { class: 'detail-head', 'data-testid': 'webhook-detail', 'data-webhook-id': hook.id });
    const statsSlot = h('section', { class: 'card', 'aria-labelledby': 'stats-title' });
    const showStats = (content) => statsSlot.replaceChildren(h('h2', { id: 'stats-title', class: 'section-title', text: 'Last hour' }), content);
    const latestHead = latestOnly();
    const latestStats = latestOnly();
    const log = deliveryLog(view, hook, () => refreshHead());

    async function loadStats() {
      const current = latestStats();
      const stats = await fetchStats(id);
      if (view.alive && current()) showStats(statsBlock(stats));
    }

    // Several deliveries may settle in one poll: only the newest answer is shown, so a
    // slower, older one cannot put back a stale status.
    let focusAfterHead = null;
    async function refreshHead(focusSelector) {
      const current = latestHead();
      if (focusSelector) focusAfterHead = focusSelector;
      loadStats();
      try {
        const fresh = await api('GET', hookPath(id));
        if (!view.alive || !current()) return;
        hook = fresh;
        renderHead(focusAfterHead);
        focusAfterHead = null;
      } catch (_) { /* the log shows its own errors */ }
    }

    // Focus inside the header stays on the same control across a re-render (or goes to
    // `focusSelector`, the control that caused it).
    function renderHead(focusSelector) {
      const active = document.activeElement;
      let keep = focusSelector;
      if (!keep && active && head.contains(active)) {
        keep = active.dataset.testid ? `[data-testid="${active.dataset.testid}"]` : (active.tagName === 'H1' ? 'h1' : null);
      }
      head.replaceChildren(
        h('div', { class: 'card-head' },
          h('div', { class: 'card-title' },
            h('h1', { text: hook.name, tabindex: '-1' }),
            h('p', { class: 'url', 'data-testid': 'webhook-url', text: hook.url })),
          badge(hook.status, 'webhook-status')),
        eventTypeChips(hook.eventTypes),
        hookSettings(hook),
        h('p', { class: 'meta muted' }, 'Id ', h('code', { text: hook.id }), ' · created ', timeEl(hook.createdAt), ' · updated ', timeEl(hook.updatedAt)),
        webhookActions(hook, (what) => (what === 'deleted' ? navigate('#/webhooks') : refreshHead('[data-testid="toggle-enabled"]')), false));
      const target = keep && $(keep, head);
      if (target) target.focus({ preventScroll: true });
    }

    renderHead();
    showStats(h('p', { class: 'loading', text: 'Loading stats…' }));
    setPage(hook.name,
      backLink(),
      h('section', { class: 'card' }, head),
      statsSlot,
      h('div', { class: 'tools' }, testEventForm(view, hook, log), recoverForm(view, hook, log)),
      log.el);
    focusMain(view);
    log.load();
    loadStats();
  }

  function testEventForm(view, hook, log) {
    const selectId = uid('test-type');
    const subscribed = ALL_TYPES.filter((t) => matches(hook.eventTypes, t));
    const select = h('select', { id: selectId, 'data-testid': 'test-event-type' },
      CATALOG.map((g) => h('optgroup', { label: g.label },
        g.types.map((t) => h('option', { value: t, text: t })))));
    select.value = subscribed[0] || ALL_TYPES[0];
    const result = h('p', { class: 'form-result', role: 'status', 'data-testid': 'test-result' });
    const submit = h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'send-test', text: 'Send test event' });
    const form = h('form', { class: 'card tool', 'aria-labelledby': 'test-title', novalidate: true },
      h('h2', { id: 'test-title', class: 'section-title', text: 'Send a test event' }),
      h('p', { class: 'help', text: 'Sends the guide’s example payload of that type to this webhook only (whatever it subscribes to), signed and logged like any delivery.' }),
      h('div', { class: 'inline-form' },
        h('div', { class: 'field' }, h('label', { for: selectId, text: 'Event type' }), select),
        submit),
      result);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      submit.disabled = true;
      result.className = 'form-result';
      result.textContent = 'Sending…';
      try {
        const answer = await api('POST', `${hookPath(hook.id)}/test`, { type: select.value });
        if (!view.alive) return;
        result.dataset.deliveryId = answer.deliveryId;
        result.dataset.eventId = answer.eventId;
        result.replaceChildren('Queued ', h('code', { text: select.value }), ' as delivery ', h('code', { text: answer.deliveryId }), '.');
        result.classList.add('ok');
        log.load();
      } catch (e) {
        result.textContent = `Not sent: ${errorText(e)}`;
        result.classList.add('error');
      } finally {
        submit.disabled = false;
      }
    });
    return form;
  }

  function matches(eventTypes, type) {
    return eventTypes.some((t) => t === '*' || t === type || (t.endsWith(':*') && type.startsWith(t.slice(0, -1))));
  }

  function recoverForm(view, hook, log) {
    const sinceId = uid('since');
    const untilId = uid('until');
    const hintId = uid('recover-hint');
    const since = h('input', { id: sinceId, type: 'datetime-local', required: true, value: toLocalInput(new Date(Date.now() - 3600 * 1000)), 'aria-describedby': hintId, 'data-testid': 'recover-since' });
    const until = h('input', { id: untilId, type: 'datetime-local', 'aria-describedby': hintId, 'data-testid': 'recover-until' });
    const result = h('p', { class: 'form-result', role: 'status', 'data-testid': 'recover-result' });
    const submit = h('button', { type: 'submit', class: 'btn', 'data-testid': 'recover', text: 'Recover failed' });
    const form = h('form', { class: 'card tool', 'aria-labelledby': 'recover-title', novalidate: true },
      h('h2', { id: 'recover-title', class: 'section-title', text: 'Recover failed deliveries' }),
      h('p', { class: 'help', id: hintId, text: 'Queues failed deliveries again with a fresh retry schedule: those created from the first time up to, not including, the second (empty: now), whenever they failed. Times are your local time.' }),
      h('div', { class: 'inline-form' },
        h('div', { class: 'field' }, h('label', { for: sinceId, text: 'Created from' }), since),
        h('div', { class: 'field' }, h('label', { for: untilId, text: 'Created before (optional)' }), until),
        submit),
      result);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      result.className = 'form-result';
      const sinceDate = new Date(since.value);
      if (!since.value || Number.isNaN(sinceDate.getTime())) {
        result.textContent = 'Choose the start of the window.';
        result.classList.add('error');
        since.focus();
        return;
      }
      const body = { since: sinceDate.toISOString() };
      if (until.value) body.until = new Date(until.value).toISOString();
      submit.disabled = true;
      try {
        const answer = await api('POST', `${hookPath(hook.id)}/recover`, body);
        if (!view.alive) return;
        result.textContent = answer.queued === 1 ? '1 failed delivery queued again.' : `${answer.queued} failed deliveries queued again.`;
        result.classList.add('ok');
        if (answer.queued) log.load();
      } catch (e) {
        result.textContent = `Not recovered: ${errorText(e)}`;
        result.classList.add('error');
      } finally {
        submit.disabled = false;
      }
    });
    return form;
  }

  // The delivery log: filters, a table with expandable rows, "load older" paging, and
  // polling of pending deliveries until they settle. `onSettled` runs when one did.
  function deliveryLog(view, hook, onSettled) {
    let next = null;
    const latest = latestOnly();
    const filters = logFilters(() => load(false));
    const rows = deliveryRows(view, hook, {
      onPending: () => poller.schedule(),
      onSettled,
    });
    const poller = pendingPoller(view, rows);
    const empty = h('p', { class: 'muted empty-log', 'data-testid': 'empty-log', hidden: true, text: 'No deliveries match.' });
    const message = h('p', { class: 'form-error', role: 'alert', hidden: true });
    const more = h('button', { type: 'button', class: 'btn', 'data-testid': 'load-more', hidden: true, text: 'Load older deliveries', onclick: () => load(true) });
    const el = h('section', { class: 'card log-card', 'aria-labelledby': 'log-title', 'data-testid': 'delivery-log' },
      h('div', { class: 'log-head' },
        h('h2', { id: 'log-title', class: 'section-title', text: 'Delivery log' }),
        filters.el),
      message,
      h('div', { class: 'table-wrap' }, rows.table),
      empty,
      h('div', { class: 'log-foot' }, more));

    async function load(append) {
      const current = latest();
      const q = new URLSearchParams({ limit: String(PAGE_SIZE), ...filters.value() });
      if (append && next) q.set('after', next);
      el.setAttribute('aria-busy', 'true');
      more.disabled = true;
      try {
        const page = await api('GET', `${hookPath(hook.id)}/deliveries?${q}`);
        if (!view.alive || !current()) return;
        message.hidden = true;
        if (append) rows.append(page.deliveries);
        else rows.replaceAll(page.deliveries);
        next = page.next;
        more.hidden = !next;
        empty.hidden = rows.size() > 0;
        rows.table.hidden = rows.size() === 0;
        poller.schedule();
      } catch (e) {
        if (!view.alive || !current()) return;
        message.textContent = `Could not load deliveries: ${errorText(e)}`;
        message.hidden = false;
      } finally {
        if (current()) { el.removeAttribute('aria-busy'); more.disabled = false; }
      }
    }

    return { el, load: () => load(false) };
  }

  // The log's filters and its Refresh button; `value()` gives the query parameters.
  function logFilters(onChange) {
    const statusSelect = h('select', { id: 'filter-status', 'data-testid': 'filter-status', onchange: onChange },
      h('option', { value: '', text: 'All statuses' }),
      DELIVERY_STATUSES.map((st) => h('option', { value: st, text: STATUS_LABEL[st] })));
    const typeSelect = h('select', { id: 'filter-type', 'data-testid': 'filter-event-type', onchange: onChange },
      h('option', { value: '', text: 'All event types' }),
      CATALOG.map((g) => h('optgroup', { label: g.label }, g.types.map((t) => h('option', { value: t, text: t })))));
    const el = h('div', { class: 'filters', role: 'group', 'aria-label': 'Filter deliveries' },
      h('div', { class: 'field' }, h('label', { for: 'filter-status', text: 'Status' }), statusSelect),
      h('div', { class: 'field' }, h('label', { for: 'filter-type', text: 'Event type' }), typeSelect),
      h('button', { type: 'button', class: 'btn', 'data-testid': 'reload-log', text: 'Refresh', onclick: onChange }));
    return {
      el,
      value() {
        const q = {};
        if (statusSelect.value) q.status = statusSelect.value;
        if (typeSelect.value) q.eventType = typeSelect.value;
        return q;
      },
    };
  }

  // The log's table: one row per delivery, expandable to its attempts. Rows are replaced in
  // place when a delivery changes, keeping focus and the expanded state.
  function deliveryRows(view, hook, { onPending, onSettled }) {
    const entries = new Map(); // delivery id -> { delivery, row, detail, expanded }
    const tbody = h('tbody', { 'data-testid': 'delivery-rows' });
    const table = h('table', { class: 'log', 'aria-labelledby': 'log-title' },
      h('thead', {}, h('tr', {},
        ['Status', 'Event type', 'Delivery', 'Created', 'Attempts', 'Last result', ''].map((c, i) => h('th', { scope: 'col', class: i === 6 ? 'col-actions' : null }, c ? c : h('span', { class: 'visually-hidden', text: 'Actions' }))))),
      tbody);

    function add(delivery, expanded) {
      const entry = { delivery, expanded: false, row: null, detail: null };
      entries.set(delivery.id, entry);
      entry.row = deliveryRow(entry, { toggle, retry });
      tbody.append(entry.row);
      if (expanded) toggle(entry);
    }

    function replace(entry, delivery) {
      entry.delivery = delivery;
      const row = deliveryRow(entry, { toggle, retry });
      swapKeepingFocus(entry.row, row);
      entry.row = row;
      if (entry.expanded && entry.detail) {
        const detail = detailRow(entry);
        swapKeepingFocus(entry.detail, detail);
        entry.detail = detail;
      }
    }

    function toggle(entry) {
      entry.expanded = !entry.expanded;
      const btn = $('[data-testid="toggle-details"]', entry.row);
      btn.setAttribute('aria-expanded', String(entry.expanded));
      btn.replaceChildren(...toggleLabel(entry));
      entry.row.classList.toggle('expanded', entry.expanded);
      if (entry.expanded) {
        entry.detail = detailRow(entry);
        entry.row.after(entry.detail);
      } else if (entry.detail) {
        entry.detail.remove();
        entry.detail = null;
      }
    }

    async function retry(entry, button) {
      if (!(await retryDelivery(hook.id, entry.delivery.id, button))) return;
      try {
        await refresh(entry);
      } catch (e) {
        if (view.alive) flash('error', `Queued again, but the log could not be updated: ${errorText(e)}`);
      }
    }

    // Fetches one delivery again; a settled one may have changed the webhook's status.
    async function refresh(entry) {
      const fresh = await api('GET', `${hookPath(hook.id)}/deliveries/${enc(entry.delivery.id)}`);
      if (!view.alive || entries.get(fresh.id) !== entry) return;
      const before = entry.delivery.status;
      replace(entry, fresh);
      if (fresh.status === 'pending') onPending();
      else if (fresh.status !== before) onSettled();
    }

    return {
      table,
      size: () => entries.size,
      pending: () => [...entries.values()].filter((e) => e.delivery.status === 'pending'),
      refresh,
      replaceAll(deliveries) {
        const expanded = new Set([...entries].filter(([, e]) => e.expanded).map(([k]) => k));
        entries.clear();
        tbody.replaceChildren();
        deliveries.forEach((d) => add(d, expanded.has(d.id)));
      },
      append(deliveries) {
        deliveries.forEach((d) => { if (!entries.has(d.id)) add(d, false); });
      },
    };
  }

  // Polls the pending rows every POLL_MS until none is left.
  function pendingPoller(view, rows) {
    let scheduled = false;
    function schedule() {
      if (scheduled || !rows.pending().length) return;
      scheduled = true;
      view.later(async () => {
        scheduled = false;
        await Promise.all(rows.pending().map((e) => rows.refresh(e).catch(() => {})));
        schedule();
      }, POLL_MS);
    }
    return { schedule };
  }

  // "Details" / "Hide", with the delivery named for screen readers only.
  function toggleLabel(entry) {
    const id = entry.delivery.id;
    return entry.expanded
      ? ['Hide', h('span', { class: 'visually-hidden', text: ` details of delivery ${id}` })]
      : ['Details', h('span', { class: 'visually-hidden', text: ` of delivery ${id}` })];
  }

  function deliveryRow(entry, { toggle, retry }) {
    const d = entry.delivery;
    const last = d.attempts[d.attempts.length - 1];
    const cell = (label, ...content) => h('td', { 'data-label': label }, ...content);
    const actions = h('td', { class: 'col-actions' },
      h('div', { class: 'row-actions' },
        h('button', {
          type: 'button', class: 'btn btn-small', 'data-testid': 'toggle-details',
          'aria-expanded': String(entry.expanded), 'aria-controls': `detail-${d.id}`,
          onclick: () => toggle(entry),
        }, ...toggleLabel(entry)),
        d.status === 'failed'
          ? h('button', { type: 'button', class: 'btn btn-small btn-primary', 'data-testid': 'retry', onclick: (ev) => retry(entry, ev.currentTarget) },
            'Retry', h('span', { class: 'visually-hidden', text: ` delivery ${d.id}` }))
          : null));
    return h('tr', { class: `delivery-row${entry.expanded ? ' expanded' : ''}`, 'data-testid': 'delivery-row', 'data-delivery-id': d.id, 'data-status': d.status, 'data-event-type': d.eventType },
      cell('Status', badge(d.status, 'delivery-status')),
      cell('Event type', h('code', { text: d.eventType })),
      cell('Delivery', h('a', { class: 'mono id-link', href: `#/webhooks/${enc(d.webhookId)}/deliveries/${enc(d.id)}`, title: d.id, text: shortId(d.id) })),
      cell('Created', timeEl(d.createdAt)),
      cell('Attempts', String(d.attempts.length)),
      cell('Last result', lastResult(d, last)),
      actions);
  }

  function detailRow(entry) {
    return h('tr', { class: 'detail-row', id: `detail-${entry.delivery.id}`, 'data-testid': 'delivery-detail' },
      h('td', { colspan: 7 }, deliveryDetail(entry.delivery)));
  }

  // Queues a failed delivery again (the log's and the delivery page's Retry button). The
  // button stays disabled on success (the caller replaces it) and is enabled again on error.
  async function retryDelivery(hookId, deliveryId, button) {
    button.disabled = true;
    try {
      await api('POST', `${hookPath(hookId)}/deliveries/${enc(deliveryId)}/retry`);
      flash('info', `Delivery ${deliveryId} queued again.`);
      return true;
    } catch (e) {
      flash('error', `Retry failed: ${errorText(e)}`);
      button.disabled = false;
      button.focus();
      return false;
    }
  }

  function shortId(id) {
    return id.length > 18 ? `${id.slice(0, 12)}…${id.slice(-4)}` : id;
  }

  function lastResult(d, last) {
    if (d.status === 'pending' && d.nextAttemptAt) {
      return h('span', { class: 'muted' }, 'next attempt ', timeEl(d.nextAttemptAt, false));
    }
    if (!last) return h('span', { class: 'muted', text: 'no attempt yet' });
    if (last.statusCode !== undefined) {
      const ok = last.statusCode >= 200 && last.statusCode < 300;
      return h('span', { class: `result ${ok ? 'result-ok' : 'result-bad'}` }, h('strong', { text: `HTTP ${last.statusCode}` }), ` · ${last.durationMs} ms`);
    }
    return h('span', { class: 'result result-bad', title: last.error || '' }, h('strong', { text: 'No answer' }), ` · ${last.durationMs} ms`);
  }

  // One delivery's facts and its attempts; shared by the expanded row and its own page,
  // which passes the event too (for the trace it came in, if any).
  function deliveryDetail(d, event) {
    const facts = h('dl', { class: 'facts' },
      h('dt', { text: 'Delivery' }), h('dd', {}, h('code', { text: d.id })),
      h('dt', { text: 'Event' }), h('dd', {}, h('code', { text: d.eventId }), ' ', h('code', { text: d.eventType })),
      event && event.traceId ? [h('dt', { text: 'Trace' }), h('dd', {}, h('code', { 'data-testid': 'trace-id', text: event.traceId }))] : null,
      h('dt', { text: 'Created' }), h('dd', {}, timeEl(d.createdAt)),
      d.nextAttemptAt ? [h('dt', { text: 'Next attempt' }), h('dd', {}, timeEl(d.nextAttemptAt))] : null);
    if (!d.attempts.length) {
      return h('div', { class: 'delivery-detail' }, facts, h('p', { class: 'muted', text: 'No attempt has been made yet.' }));
    }
    const attempts = h('ol', { class: 'attempts', 'aria-label': 'Attempts, oldest first', 'data-testid': 'attempts' },
      d.attempts.map((a) => {
        const ok = a.statusCode !== undefined && a.statusCode >= 200 && a.statusCode < 300;
        return h('li', { class: `attempt ${ok ? 'attempt-ok' : 'attempt-bad'}`, 'data-testid': 'attempt', 'data-attempt': a.attempt },
          h('div', { class: 'attempt-head' },
            h('span', { class: 'attempt-no', text: `Attempt ${a.attempt}` }),
            h('span', { class: 'attempt-code', 'data-testid': 'attempt-status-code', text: a.statusCode !== undefined ? `HTTP ${a.statusCode}` : 'no HTTP answer' }),
            h('span', { class: 'attempt-duration', 'data-testid': 'attempt-duration', text: `${a.durationMs} ms` }),
            timeEl(a.at)),
          a.error ? h('p', { class: 'attempt-error', 'data-testid': 'attempt-error' }, h('span', { class: 'label', text: 'Error: ' }), a.error) : null,
          a.responseBody !== undefined
            ? h('div', { class: 'response' },
              h('span', { class: 'label', text: 'Response body (first 1 KiB)' }),
              h('pre', { class: 'response-body', 'data-testid': 'response-body', tabindex: '0', text: a.responseBody === '' ? '(empty)' : a.responseBody }))
            : null);
      }));
    return h('div', { class: 'delivery-detail' }, facts, attempts);
  }

  // A single delivery as its own page (for links to it). While it is pending it is fetched
  // again every 2 s and updated in place, without moving focus.
  async function renderDeliveryPage(view, hookId, deliveryId) {
    const back = () => backLink(`#/webhooks/${enc(hookId)}`, 'Delivery log');
    const path = `${hookPath(hookId)}/deliveries/${enc(deliveryId)}`;
    setPage('Delivery', back(), h('p', { class: 'loading', text: 'Loading delivery…' }));
    let d;
    try {
      d = await api('GET', path);
    } catch (e) {
      if (view.alive) setPage('Delivery not found', back(), h('p', { class: 'form-error', role: 'alert', text: errorText(e) }));
      return;
    }
    if (!view.alive) return;
    // The event, for its trace-id; the page works without it (retention may have pruned it).
    let event = null;
    try {
      event = await api('GET', `/api/hooks/events/${enc(d.eventId)}`);
    } catch (_) { /* shown without the trace */ }
    if (!view.alive) return;

    const parts = { badge: null, detail: null, actions: null };
    const build = () => ({
      badge: badge(d.status, 'delivery-status'),
      detail: deliveryDetail(d, event),
      actions: h('div', { class: 'actions' }, d.status === 'failed'
        ? h('button', { type: 'button', class: 'btn btn-primary', 'data-testid': 'retry', text: 'Retry', onclick: (ev) => retry(ev.currentTarget) })
        : null),
    });
    Object.assign(parts, build());
    const section = h('section', { class: 'card', 'data-testid': 'delivery-page', 'data-delivery-id': d.id, 'data-status': d.status },
      h('div', { class: 'card-head' }, h('h1', { class: 'mono-title', text: d.id }), parts.badge),
      parts.detail,
      parts.actions);

    function show(fresh) {
      if (JSON.stringify(fresh) === JSON.stringify(d)) return;
      d = fresh;
      section.dataset.status = d.status;
      const next = build();
      for (const key of Object.keys(parts)) {
        swapKeepingFocus(parts[key], next[key], () => focusMain());
        parts[key] = next[key];
      }
    }

    const latest = latestOnly();
    async function refresh() {
      const current = latest();
      try {
        const fresh = await api('GET', path);
        if (view.alive && current()) show(fresh);
      } catch (_) { /* keep what is shown; the next poll tries again */ }
      if (view.alive && current() && d.status === 'pending') view.later(refresh, POLL_MS * 2);
    }

    async function retry(button) {
      if ((await retryDelivery(hookId, deliveryId, button)) && view.alive) refresh();
    }

    setPage(`Delivery ${d.id}`, back(), section);
    focusMain(view);
    if (d.status === 'pending') view.later(refresh, POLL_MS * 2);
  }

  // ---------------------------------------------------------------------------------
  // The operator page (admin token): GET /api/admin/overview, refreshed every few seconds.

  function fmtBytes(n) {
    if (n === null || n === undefined) return '—';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let value = n;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
    return `${unit ? value.toFixed(value < 10 ? 1 : 0) : value} ${units[unit]}`;
  }

  function operatorTiles(o) {
    const counts = o.webhookCounts;
    const store = h('span', {}, badge(o.store.status, 'store-status'),
      o.store.reason ? h('code', { class: 'store-reason', 'data-testid': 'store-reason', text: ` ${o.store.reason}` }) : null);
    return h('dl', { class: 'stat-grid operator-tiles', 'data-testid': 'operator-tiles' },
      statTile('Store', store, 'store-health', o.store.status === 'ok' ? 'Writes commit' : 'Writes cannot commit, or free space is below store.min_free_space'),
      statTile('Store size', fmtBytes(o.store.bytes), 'store-bytes'),
      statTile('Free space', fmtBytes(o.store.freeBytes), 'store-free'),
      statTile('Pending deliveries', String(o.queue.pending), 'queue-pending'),
      statTile('Due now', o.queue.due === null ? '…' : String(o.queue.due), 'queue-due', 'Pending deliveries already due but not yet sent, counted every 5 s'),
      statTile('Webhooks', `${counts.failing} failing · ${counts.disabled} disabled · ${counts.healthy} healthy`, 'webhook-counts'));
  }

  function operatorWebhookRows(hooks) {
    const cell = (label, ...content) => h('td', { 'data-label': label }, ...content);
    return hooks.map((w) => h('tr', { 'data-testid': 'operator-webhook', 'data-webhook-id': w.id, 'data-status': w.status },
      cell('Status', badge(w.status)),
      cell('Webhook', h('div', { class: 'cell-stack' },
        h('strong', { 'data-testid': 'operator-webhook-name', text: w.name }),
        h('span', { class: 'url', text: w.url }))),
      cell('User', h('code', { 'data-testid': 'operator-webhook-user', text: w.userId })),
      cell('Failing since', w.failingSince ? timeEl(w.failingSince, true) : h('span', { class: 'muted', text: '—' })),
      cell('Last success', timeEl(w.lastSuccessAt, true))));
  }

  function notificationRows(notifications) {
    const cell = (label, ...content) => h('td', { 'data-label': label }, ...content);
    return notifications.map((n) => h('tr', { 'data-testid': 'notification', 'data-type': n.type, 'data-status': n.status, 'data-webhook-id': n.webhook.id },
      cell('When', timeEl(n.timestamp)),
      cell('Type', h('span', { class: `notification-type type-${n.type.replace('webhook.', '')}`, text: NOTIFICATION_LABEL[n.type] || n.type })),
      cell('Webhook', h('div', { class: 'cell-stack' }, h('strong', { text: n.webhook.name }), h('code', { text: n.webhook.userId }))),
      cell('Sent', h('div', { class: 'cell-stack' },
        badge(n.status, 'notification-status'),
        n.lastError ? h('span', { class: 'muted', text: `${n.attempts} attempt${n.attempts === 1 ? '' : 's'}: ${n.lastError}` }) : null)),
      cell('Reason', h('span', { class: 'reason', text: n.reason }))));
  }

  function operatorTable(label, columns, testid) {
    const tbody = h('tbody', { 'data-testid': testid });
    const table = h('table', { class: 'log operator-table', 'aria-label': label },
      h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col', text: c })))),
      tbody);
    return { table, tbody };
  }

  async function renderOperator(view) {
    const latest = latestOnly();
    let next = null;
    let pages = 1;
    const message = h('p', { class: 'form-error', role: 'alert', 'data-testid': 'operator-error', hidden: true });
    const tiles = h('div', { class: 'card', 'aria-busy': 'true' }, h('p', { class: 'loading', text: 'Loading…' }));
    const chart = h('section', { class: 'card', 'aria-labelledby': 'attempts-title' },
      h('h2', { id: 'attempts-title', class: 'section-title', text: 'Attempts, all webhooks, last hour' }));
    const chartSlot = h('div', {});
    chart.append(chartSlot);
    const hooks = operatorTable('Webhooks of all users', ['Status', 'Webhook', 'User', 'Failing since', 'Last success'], 'operator-webhooks');
    const more = h('button', { type: 'button', class: 'btn', 'data-testid': 'operator-more', hidden: true, text: 'Load more webhooks', onclick: () => loadMore() });
    const hooksCard = h('section', { class: 'card log-card', 'aria-labelledby': 'op-hooks-title' },
      h('div', { class: 'log-head' },
        h('h2', { id: 'op-hooks-title', class: 'section-title', text: 'Webhooks' }),
        h('p', { class: 'muted', text: 'Every user\'s webhooks: failing and disabled ones first.' })),
      h('div', { class: 'table-wrap' }, hooks.table),
      h('div', { class: 'log-foot' }, more));
    const notes = operatorTable('Recent operator notifications', ['When', 'Type', 'Webhook', 'Sent', 'Reason'], 'notifications');
    const notesEmpty = h('p', { class: 'muted empty-log', 'data-testid': 'no-notifications', hidden: true, text: 'No webhook has failed, been disabled or recovered yet.' });
    const notesCard = h('section', { class: 'card log-card', 'aria-labelledby': 'op-notes-title' },
      h('div', { class: 'log-head' },
        h('h2', { id: 'op-notes-title', class: 'section-title', text: 'Recent notifications' }),
        h('p', { class: 'muted', text: 'What hookd told (or would tell) [notifications] url.' })),
      h('div', { class: 'table-wrap' }, notes.table),
      notesEmpty);
    const refresh = h('button', { type: 'button', class: 'btn', 'data-testid': 'refresh', text: 'Refresh', onclick: () => rerender('[data-testid="refresh"]') });
    setPage('Operator overview',
      h('div', { class: 'page-head' },
        h('div', {},
          h('h1', { text: 'Operator overview' }),
          h('p', { class: 'muted', text: `The store, the queue and every user's webhooks; refreshed every ${OPERATOR_REFRESH_MS / 1000} s.` })),
        h('div', { class: 'actions' }, refresh)),
      message, tiles, chart, hooksCard, notesCard);
    focusMain(view);

    async function load() {
      const current = latest();
      try {
        const o = await api('GET', '/api/admin/overview');
        if (!view.alive || !current()) return;
        message.hidden = true;
        tiles.removeAttribute('aria-busy');
        tiles.replaceChildren(operatorTiles(o));
        const a = o.attempts;
        chartSlot.replaceChildren(attemptsChart({ series: a.series, window: '1h', attempts: a.succeeded + a.failed + a.errored, succeeded: a.succeeded, failed: a.failed, errored: a.errored }));
        // Pages loaded on request stay until Refresh; the first page follows the data.
        if (pages === 1) {
          hooks.tbody.replaceChildren(...operatorWebhookRows(o.webhooks));
          next = o.next;
          more.hidden = !next;
        }
        notes.tbody.replaceChildren(...notificationRows(o.notifications));
        notes.table.hidden = o.notifications.length === 0;
        notesEmpty.hidden = o.notifications.length > 0;
      } catch (e) {
        if (!view.alive || !current()) return;
        message.textContent = `Could not load the overview: ${errorText(e)}`;
        message.hidden = false;
      } finally {
        if (view.alive && current()) view.later(load, OPERATOR_REFRESH_MS);
      }
    }

    async function loadMore() {
      if (!next) return;
      more.disabled = true;
      try {
        const o = await api('GET', `/api/admin/overview?after=${enc(next)}`);
        if (!view.alive) return;
        pages += 1;
        hooks.tbody.append(...operatorWebhookRows(o.webhooks));
        next = o.next;
        more.hidden = !next;
      } catch (e) {
        if (view.alive) { message.textContent = `Could not load more webhooks: ${errorText(e)}`; message.hidden = false; }
      } finally {
        more.disabled = false;
      }
    }

    await load();
  }

  function renderNotFound(view) {
    setPage('Not found', backLink(), h('h1', { text: 'Nothing here' }), h('p', { class: 'muted', text: 'This address does not name a dashboard page.' }));
    focusMain(view);
  }

  // ---------------------------------------------------------------------------------
  // Start

  document.getElementById('sign-out').addEventListener('click', signOut);
  window.addEventListener('hashchange', () => { onNavigate(); route(); });

  route();
}());
