// End-to-end check of the hookd dashboard (/ui/) in headless Chromium.
//
// Run by tests/it/dashboard.rs against a hookd it started; can also be run by hand:
//   HOOKD_URL=http://127.0.0.1:8080 HOOKD_USER_TOKEN=… HOOKD_PUBLISHER_TOKEN=… HOOKD_ADMIN_TOKEN=… node dashboard.mjs
// hookd must deliver with a single attempt (retry_schedule = ["0s"]) and allow http://
// and loopback destinations. Optional: HOOKD_SCREENSHOTS=<dir> saves PNGs of the main views.
//
// Every check prints one line when it passes; the first failure prints why and exits 1.
// Only loopback traffic: hookd, this script's receiver and the browser (Chromium is told
// that no other host name resolves). Failure messages never print the user token.

import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { chromium } from 'playwright-core';

const BASE = requireEnv('HOOKD_URL').replace(/\/+$/, '');
const USER_TOKEN = requireEnv('HOOKD_USER_TOKEN');
const PUBLISHER_TOKEN = requireEnv('HOOKD_PUBLISHER_TOKEN');
const ADMIN_TOKEN = requireEnv('HOOKD_ADMIN_TOKEN');
const SCREENSHOTS = process.env.HOOKD_SCREENSHOTS || '';
const CHROMIUM = process.env.HOOKD_CHROMIUM || '/usr/bin/chromium';
const WAIT_MS = 20_000;
const EXPECTED_CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
  "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
const DOWN_BODY = 'receiver down for maintenance';
// Receiver-controlled text that would run if the page ever treated it as HTML.
const XSS_NAME = '<img src=x onerror=alert(1)>';
const XSS_BODY = '<script>window.__pwned=1</script>';
const TIME_ZONE = 'America/New_York';
// A custom header's value: sent to the receiver, never shown on the page.
const HEADER_SECRET = 'hdr-secret-7Qm2Zx9Lp';
const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';

function requireEnv(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`${name} is not set`);
    process.exit(2);
  }
  return v;
}

// ------------------------------------------------------------------------------------
// Reporting

let passed = 0;
function ok(what) {
  passed += 1;
  console.log(`ok ${String(passed).padStart(2)} - ${what}`);
}

function assert(cond, message) {
  if (!cond) throw new Error(message);
}

function assertEq(actual, expected, what) {
  if (actual !== expected) {
    throw new Error(`${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
  }
}

// Polls `probe` until it answers something truthy; never a fixed sleep.
async function waitFor(what, probe, timeoutMs = WAIT_MS) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await probe();
    if (last) return last;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

// ------------------------------------------------------------------------------------
// hookd's API, for the set-up the browser does not do

async function api(method, p, token, body, extraHeaders) {
  const headers = { Authorization: `Bearer ${token}`, ...(extraHeaders || {}) };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(BASE + p, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${p}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

const publish = (type, payload) => api('POST', '/api/hooks/events', PUBLISHER_TOKEN,
  { type, userId: 'user-123', source: 'whatsapp', payload });

// ------------------------------------------------------------------------------------
// A receiver on loopback: /flaky answers 500 until switched to healthy, /steady always 200,
// /broken always 500.

const received = [];
let flakyHealthy = false;
const receiver = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks).toString('utf8');
    received.push({ method: req.method, path: req.url, headers: req.headers, body });
    if (req.url.startsWith('/xss')) {
      res.writeHead(500, { 'Content-Type': 'text/html' });
      res.end(XSS_BODY);
    } else if (req.url.startsWith('/broken')) {
      res.writeHead(500, { 'Content-Type': 'text/plain' });
      res.end(DOWN_BODY);
    } else if (req.url.startsWith('/steady') || flakyHealthy) {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end('{"received":true}');
    } else {
      res.writeHead(500, { 'Content-Type': 'text/plain' });
      res.end(DOWN_BODY);
    }
  });
});
await new Promise((resolve) => receiver.listen(0, '127.0.0.1', resolve));
const RECEIVER = `http://127.0.0.1:${receiver.address().port}`;

function newSecret() {
  return `whsec_${crypto.randomBytes(32).toString('base64')}`;
}

// X-Hook-Signature: hex HMAC-SHA256 of the raw body, keyed with the secret string.
function hookSignature(secret, body) {
  return `sha256=${crypto.createHmac('sha256', secret).update(body).digest('hex')}`;
}

// Standard Webhooks: base64 HMAC-SHA256 of "id.timestamp.body", keyed with the decoded whsec_.
function standardSignature(secret, id, ts, body) {
  const key = Buffer.from(secret.slice('whsec_'.length), 'base64');
  return `v1,${crypto.createHmac('sha256', key).update(`${id}.${ts}.${body}`).digest('base64')}`;
}

// The value a datetime-local input shows for `date` in `timeZone` (minutes precision).
function localInput(date, timeZone) {
  const parts = Object.fromEntries(new Intl.DateTimeFormat('en-US', {
    timeZone, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit',
  }).formatToParts(date).map((p) => [p.type, p.value]));
  return `${parts.year}-${parts.month}-${parts.day}T${parts.hour}:${parts.minute}`;
}

// ------------------------------------------------------------------------------------
// Browser helpers

const consoleErrors = [];
const pageErrors = [];
const dialogs = [];
const hasToken = (s) => s.includes(USER_TOKEN) || s.includes(encodeURIComponent(USER_TOKEN));

async function newPage(browser, viewport, timezoneId) {
  const context = await browser.newContext({ viewport, deviceScaleFactor: 1, timezoneId });
  // Record CSP violations from inside the page (CDP-injected, so not itself subject to CSP).
  await context.addInitScript(() => {
    window.__cspViolations = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI || '(inline)'}`);
    });
  });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  page.on('console', (m) => {
    if (m.type() === 'error' || /Content Security Policy/i.test(m.text())) {
      consoleErrors.push(`[${viewport.width}px] ${m.text()}`);
    }
  });
  page.on('pageerror', (e) => pageErrors.push(`[${viewport.width}px] ${e.message}`));
  // alert(), confirm() and the like: the page never opens one, injected markup would.
  page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss().catch(() => {}); });
  // Everything the page loads must come from hookd itself, and no URL carries the token.
  page.on('request', (r) => {
    const u = r.url();
    if (hasToken(u)) pageErrors.push(`a ${r.method()} request URL contains the user token (URL not printed)`);
    else if (!u.startsWith(BASE + '/') && !u.startsWith('data:')) pageErrors.push(`request off the origin: ${u}`);
  });
  return page;
}

async function screenshot(page, name, fullPage = false) {
  if (!SCREENSHOTS) return;
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  const file = path.join(SCREENSHOTS, name);
  await page.screenshot({ path: file, fullPage });
  ok(`screenshot ${file}`);
}

async function signIn(page, token) {
  await page.goto(`${BASE}/ui/`);
  await page.getByTestId('token-input').fill(token);
  await page.getByTestId('sign-in').click();
}

const focusedTestId = (page) => page.evaluate(() => document.activeElement && document.activeElement.getAttribute('data-testid'));
const dialogOpen = (page, testid) => page.evaluate((t) => Boolean(document.querySelector(`[data-testid="${t}"]`)?.open), testid);

// Chromium logs each 401 answer as a failed resource load; drop those it was meant to get.
function forgetExpected401s() {
  for (let i = consoleErrors.length - 1; i >= 0; i -= 1) {
    if (/status of 401/.test(consoleErrors[i])) consoleErrors.splice(i, 1);
  }
}

// Signing in with an admin token asks the user API first: its one 403 is how the page
// learns the token's role. Drops exactly `n` such console lines.
function forgetRoleProbes(n) {
  let left = n;
  for (let i = consoleErrors.length - 1; i >= 0 && left > 0; i -= 1) {
    if (/status of 403/.test(consoleErrors[i])) { consoleErrors.splice(i, 1); left -= 1; }
  }
  assertEq(left, 0, 'role probes (403) seen in the console');
}

const card = (page, id) => page.locator(`[data-testid="webhook-card"][data-webhook-id="${id}"]`);
const row = (page, id) => page.locator(`[data-testid="delivery-row"][data-delivery-id="${id}"]`);

async function noHorizontalOverflow(page, what) {
  const { scroll, width } = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, width: window.innerWidth }));
  assert(scroll <= width, `${what}: the page is ${scroll}px wide in a ${width}px viewport`);
}

// ------------------------------------------------------------------------------------
// The checks

let browser;
let exitCode = 0;
try {
  assertEq(new URL(BASE).hostname, '127.0.0.1', 'host of HOOKD_URL');

  // -- the page's files and their headers -------------------------------------------
  for (const file of ['', 'app.js', 'app.css', 'favicon.svg']) {
    const res = await fetch(`${BASE}/ui/${file}`);
    assertEq(res.status, 200, `GET /ui/${file}`);
    assertEq(res.headers.get('content-security-policy'), EXPECTED_CSP, `CSP of /ui/${file}`);
    await res.arrayBuffer();
  }
  ok('GET /ui/ and its three files answer 200 with the Content-Security-Policy header');

  // -- set-up through the API: one failing and one healthy webhook ----------------------
  const flakySecret = newSecret();
  const flaky = await api('POST', '/api/hooks/webhooks', USER_TOKEN, {
    name: 'Support desk', url: `${RECEIVER}/flaky`, eventTypes: ['app:*', 'message:received'], secret: flakySecret,
  });
  const steady = await api('POST', '/api/hooks/webhooks', USER_TOKEN, {
    name: 'Analytics pipeline', url: `${RECEIVER}/steady`, eventTypes: ['*'], secret: newSecret(),
  });
  ok(`created webhooks ${flaky.id} (answers 500) and ${steady.id} (answers 200)`);

  const connected = await publish('app:connected', { appType: 'whatsapp', status: 'connected', metadata: { phoneNumber: '+1234567890' } });
  const message = await publish('message:received', { appType: 'whatsapp', messageId: 'msg-1', from: '+1234567890', text: 'Hello!' });
  await publish('agent:invoked', { agentId: 'agent-1', trigger: 'message:received' });
  assertEq(connected.deliveries, 2, 'deliveries queued for app:connected');
  ok('published app:connected, message:received and agent:invoked');

  const failedLog = await waitFor('both deliveries to the failing receiver to be failed', async () => {
    const { deliveries } = await api('GET', `/api/hooks/webhooks/${flaky.id}/deliveries`, USER_TOKEN);
    return deliveries.length === 2 && deliveries.every((d) => d.status === 'failed') && deliveries;
  });
  const failedDelivery = failedLog.find((d) => d.eventId === connected.id);
  const otherFailed = failedLog.find((d) => d.eventId === message.id);
  assert(failedDelivery && otherFailed, 'a failed delivery for each event');
  await waitFor('the failing webhook to be "failing"', async () => (await api('GET', `/api/hooks/webhooks/${flaky.id}`, USER_TOKEN)).status === 'failing');
  await waitFor('the healthy webhook to have 3 succeeded deliveries', async () => {
    const { deliveries } = await api('GET', `/api/hooks/webhooks/${steady.id}/deliveries`, USER_TOKEN);
    return deliveries.length === 3 && deliveries.every((d) => d.status === 'succeeded');
  });
  ok(`delivery ${failedDelivery.id} is failed and webhook ${flaky.id} is failing`);

  // -- the browser --------------------------------------------------------------------
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1'],
  });
  // Not the machine's zone (normally UTC): the recover form must convert local times.
  const page = await newPage(browser, { width: 1280, height: 800 }, TIME_ZONE);
  assertEq(await page.evaluate(() => Intl.DateTimeFormat().resolvedOptions().timeZone), TIME_ZONE, 'time zone of the page');

  // Sign-in with a wrong token shows the error and stores nothing.
  await signIn(page, 'not-a-real-token');
  const signinError = page.getByTestId('signin-error');
  await signinError.waitFor({ state: 'visible' });
  assert((await signinError.textContent()).includes('401'), 'the sign-in error names the 401');
  assertEq(await page.evaluate(() => sessionStorage.length + localStorage.length), 0, 'storage after a refused token');
  // Chromium logs the refused API call as a failed resource load; that one is expected.
  const refused = consoleErrors.findIndex((e) => /status of 401/.test(e));
  if (refused >= 0) consoleErrors.splice(refused, 1);
  ok('a wrong token is refused with a visible 401 message and nothing is stored');

  await page.getByTestId('token-input').fill(USER_TOKEN);
  await page.getByTestId('sign-in').click();
  await page.getByTestId('webhook-list').waitFor();
  await card(page, flaky.id).waitFor();
  const stored = await page.evaluate(() => ({ session: sessionStorage.getItem('hookd.userToken'), local: localStorage.length, url: location.href }));
  assert(stored.session === USER_TOKEN, 'sessionStorage does not hold the token that was typed (value not printed)');
  assertEq(stored.local, 0, 'localStorage entries');
  assert(!stored.url.includes(USER_TOKEN), 'the token is not in the URL');
  ok('signed in; the token is in sessionStorage only, not in localStorage or the URL');

  // The list flags the failing webhook and shows the healthy one.
  const flakyCard = card(page, flaky.id);
  const steadyCard = card(page, steady.id);
  assertEq((await flakyCard.getByTestId('status-badge').textContent()).trim(), 'Failing', 'badge of the failing webhook');
  assertEq((await steadyCard.getByTestId('status-badge').textContent()).trim(), 'Healthy', 'badge of the healthy webhook');
  assertEq(await flakyCard.getByTestId('webhook-url').textContent(), `${RECEIVER}/flaky`, 'URL shown');
  ok('the list shows "Support desk" flagged Failing and "Analytics pipeline" Healthy');

  await flakyCard.getByTestId('success-rate').waitFor();
  assertEq(await flakyCard.getByTestId('success-rate').textContent(), '0%', 'success rate of the failing webhook');
  assertEq(await steadyCard.getByTestId('success-rate').textContent(), '100%', 'success rate of the healthy webhook');
  assertEq(await steadyCard.getByTestId('attempt-count').textContent(), '3', 'attempts of the healthy webhook');
  assert(/^\d+ ms \/ \d+ ms$/.test(await steadyCard.getByTestId('latency').textContent()), 'latency p50/p99 shown');
  const chartDesc = await flakyCard.locator('[data-testid="attempts-chart"] desc').textContent();
  assert(chartDesc.includes('2 in all') && chartDesc.includes('2 failed'), `chart summary: ${chartDesc}`);
  assert(await flakyCard.locator('[data-testid="attempts-chart"] rect.seg-failed').count() >= 1, 'a failed bar in the chart');
  assert(await steadyCard.locator('[data-testid="attempts-chart"] rect.seg-ok').count() >= 1, 'a succeeded bar in the chart');
  ok('stats: success rate, latency p50/p99 and the attempts chart with its text summary');
  await noHorizontalOverflow(page, 'webhook list at 1280px');
  await screenshot(page, 'webhooks-1280.png');

  // Phone size: the list and the log fit the width.
  const phone = await newPage(browser, { width: 390, height: 844 });
  await signIn(phone, USER_TOKEN);
  await card(phone, flaky.id).getByTestId('success-rate').waitFor();
  await card(phone, steady.id).getByTestId('success-rate').waitFor();
  await noHorizontalOverflow(phone, 'webhook list at 390px');
  await screenshot(phone, 'webhooks-390.png');
  await card(phone, flaky.id).getByTestId('open-webhook').click();
  await row(phone, failedDelivery.id).getByTestId('toggle-details').click();
  await phone.getByTestId('response-body').filter({ hasText: DOWN_BODY }).waitFor();
  await noHorizontalOverflow(phone, 'delivery log at 390px');
  ok('at 390×844 the list and the delivery log (attempt expanded) fit the screen width');

  // The failing webhook's delivery log, filtered, with the failed attempt's details.
  await flakyCard.getByTestId('open-webhook').click();
  await page.locator(`[data-testid="webhook-detail"][data-webhook-id="${flaky.id}"]`).waitFor();
  await page.locator('[data-testid="webhook-status"][data-status="failing"]').waitFor();
  await row(page, failedDelivery.id).waitFor();
  await row(page, otherFailed.id).waitFor();
  ok('the webhook page shows Failing and both failed deliveries');

  await page.getByTestId('filter-status').selectOption('failed');
  await page.getByTestId('filter-event-type').selectOption('app:connected');
  await waitFor('the log to show only the app:connected delivery', async () =>
    (await page.getByTestId('delivery-row').count()) === 1 && (await row(page, failedDelivery.id).count()) === 1);
  ok('filtering by status "failed" and event type app:connected leaves that one delivery');

  const failedRow = row(page, failedDelivery.id);
  assertEq(await failedRow.getAttribute('data-status'), 'failed', 'row status');
  await failedRow.getByTestId('toggle-details').click();
  const detail = page.getByTestId('delivery-detail');
  await detail.waitFor();
  assertEq(await detail.getByTestId('attempt-status-code').first().textContent(), 'HTTP 500', 'attempt status code');
  assertEq(await detail.getByTestId('response-body').first().textContent(), DOWN_BODY, 'response body shown');
  assert(/^\d+ ms$/.test(await detail.getByTestId('attempt-duration').first().textContent()), 'attempt duration shown');
  ok(`the expanded attempt shows HTTP 500 and the receiver's answer "${DOWN_BODY}"`);
  await noHorizontalOverflow(page, 'delivery log at 1280px');
  await screenshot(page, 'delivery-log-1280.png', true);

  // Retry after the receiver recovers: the row turns succeeded without a page reload.
  flakyHealthy = true;
  await failedRow.getByTestId('retry').click();
  await page.locator(`[data-testid="delivery-row"][data-delivery-id="${failedDelivery.id}"][data-status="succeeded"]`).waitFor();
  await detail.locator('[data-testid="attempt"][data-attempt="2"] [data-testid="attempt-status-code"]').filter({ hasText: 'HTTP 200' }).waitFor();
  await page.locator('[data-testid="webhook-status"][data-status="healthy"]').waitFor();
  ok('Retry: the delivery becomes Succeeded (attempt 2, HTTP 200) and the webhook Healthy');

  // Send a test event and check what the receiver got.
  await page.getByTestId('filter-status').selectOption('');
  await page.getByTestId('filter-event-type').selectOption('');
  const testType = 'app:health_warning';
  await page.getByTestId('test-event-type').selectOption(testType);
  const before = received.length;
  await page.getByTestId('send-test').click();
  const testResult = page.locator('[data-testid="test-result"][data-delivery-id]');
  await testResult.waitFor();
  const testDelivery = await testResult.getAttribute('data-delivery-id');
  const testEvent = await testResult.getAttribute('data-event-id');
  const req = await waitFor(`the receiver to get test delivery ${testDelivery}`, () =>
    received.slice(before).find((r) => r.headers['x-hook-delivery'] === testDelivery));
  const body = JSON.parse(req.body);
  assertEq(req.method, 'POST', 'method');
  assertEq(req.path, '/flaky', 'path');
  assertEq(body.event.type, testType, 'event.type in the body');
  assertEq(body.event.id, testEvent, 'event.id in the body');
  assertEq(body.webhook.id, flaky.id, 'webhook.id in the body');
  assertEq(body.webhook.name, 'Support desk', 'webhook.name in the body');
  assertEq(req.headers['x-hook-event'], testType, 'X-Hook-Event');
  assertEq(req.headers['x-hook-delivery'], testDelivery, 'X-Hook-Delivery');
  assertEq(req.headers['webhook-id'], testEvent, 'webhook-id');
  assertEq(req.headers['x-hook-signature'], hookSignature(flakySecret, req.body), 'X-Hook-Signature');
  const expectedStd = standardSignature(flakySecret, req.headers['webhook-id'], req.headers['webhook-timestamp'], req.body);
  assert(req.headers['webhook-signature'].split(' ').includes(expectedStd), `webhook-signature ${req.headers['webhook-signature']} is not ${expectedStd}`);
  ok(`Send test event: the receiver got a signed ${testType} for ${flaky.id} (X-Hook-Event, X-Hook-Delivery, webhook-id, both signatures)`);
  await page.locator(`[data-testid="delivery-row"][data-delivery-id="${testDelivery}"][data-status="succeeded"]`).waitFor();
  ok('the test delivery appears in the log as Succeeded');

  // Recover the other failed delivery; the start typed in New York time is sent as UTC.
  const sinceInstant = new Date(Date.now() - 3600_000);
  sinceInstant.setUTCSeconds(0, 0);
  const sinceTyped = localInput(sinceInstant, TIME_ZONE);
  await page.getByTestId('recover-since').fill(sinceTyped);
  const recoverRequest = page.waitForRequest((r) => r.method() === 'POST' && r.url().endsWith(`/webhooks/${flaky.id}/recover`));
  await page.getByTestId('recover').click();
  const recoverBody = JSON.parse((await recoverRequest).postData());
  assertEq(recoverBody.since, sinceInstant.toISOString(), `"since" sent for ${sinceTyped} typed in ${TIME_ZONE}`);
  assertEq(recoverBody.until, undefined, '"until" sent when left empty');
  ok(`recover: ${sinceTyped} typed in ${TIME_ZONE} is sent as ${recoverBody.since}`);
  await page.getByTestId('recover-result').filter({ hasText: '1 failed delivery queued again.' }).waitFor();
  await page.locator(`[data-testid="delivery-row"][data-delivery-id="${otherFailed.id}"][data-status="succeeded"]`).waitFor();
  ok('Recover failed created since an hour ago queues the other failed delivery, which then succeeds');

  // Keyboard: the delivery log's controls are reachable with Tab and show a focus ring.
  await page.getByTestId('filter-status').focus();
  await page.keyboard.press('Tab');
  const focused = await page.evaluate(() => {
    const el = document.activeElement;
    return { id: el.id, outline: getComputedStyle(el).outlineStyle };
  });
  assertEq(focused.id, 'filter-type', 'the control after the status filter');
  assert(focused.outline !== 'none', 'a visible focus outline');
  ok('keyboard: Tab moves between labelled filters with a visible focus outline');

  // Text that receivers and users control is shown as text, never run as markup.
  const xss = await api('POST', '/api/hooks/webhooks', USER_TOKEN, { name: XSS_NAME, url: `${RECEIVER}/xss`, eventTypes: ['*'] });
  const xssTest = await api('POST', `/api/hooks/webhooks/${xss.id}/test`, USER_TOKEN, { type: 'app:connected' });
  await waitFor('the delivery to the /xss receiver to fail', async () =>
    (await api('GET', `/api/hooks/webhooks/${xss.id}/deliveries/${xssTest.deliveryId}`, USER_TOKEN)).status === 'failed');
  await page.getByTestId('back-link').click();
  const xssCard = card(page, xss.id);
  await xssCard.waitFor();
  assertEq(await xssCard.getByTestId('webhook-name').textContent(), XSS_NAME, 'name in the list');
  await xssCard.getByTestId('open-webhook').click();
  await page.locator(`[data-testid="webhook-detail"][data-webhook-id="${xss.id}"]`).waitFor();
  assertEq(await page.locator('[data-testid="webhook-detail"] h1').textContent(), XSS_NAME, 'name as the heading');
  await row(page, xssTest.deliveryId).getByTestId('toggle-details').click();
  assertEq(await page.getByTestId('response-body').first().textContent(), XSS_BODY, 'response body shown');
  const dom = await page.evaluate(() => ({
    pwned: typeof window.__pwned,
    imgs: document.querySelectorAll('main img').length,
    scripts: [...document.scripts].map((el) => el.getAttribute('src')),
  }));
  assertEq(dom.pwned, 'undefined', 'typeof window.__pwned');
  assertEq(dom.imgs, 0, 'images in <main>');
  assertEq(JSON.stringify(dom.scripts), '["app.js"]', 'scripts in the document');
  assertEq(dialogs.length, 0, 'JavaScript dialogs opened');
  await api('DELETE', `/api/hooks/webhooks/${xss.id}`, USER_TOKEN);
  ok('a webhook named <img onerror> and a <script> response body render as literal text; nothing ran');


  // Create, edit, disable and delete a webhook through the forms.
  await page.getByTestId('back-link').click();
  await page.getByTestId('new-webhook').click();
  await page.getByTestId('name-input').fill('Made in the browser');
  await page.getByTestId('url-input').fill(`${RECEIVER}/steady/browser`);
  await page.getByTestId('event-type-message:*').check();
  await page.getByTestId('ordering-input').selectOption('fifo');
  await page.getByTestId('add-header').click();
  await page.getByTestId('header-name').fill('Authorization');
  await page.getByTestId('header-value').fill(`Bearer ${HEADER_SECRET}`);
  await page.getByTestId('save-webhook').click();
  const secretValue = await page.getByTestId('secret-dialog').getByTestId('secret-value').inputValue();
  assert(/^whsec_[A-Za-z0-9+/]{43}=$/.test(secretValue), `shown secret ${secretValue}`);
  await page.getByTestId('secret-done').click();
  const created = page.locator('[data-testid="webhook-detail"]').filter({ hasText: 'Made in the browser' });
  await created.waitFor();
  const createdId = await created.getAttribute('data-webhook-id');
  const createdHook = await api('GET', `/api/hooks/webhooks/${createdId}`, USER_TOKEN);
  assertEq(JSON.stringify(createdHook.eventTypes), '["message:*"]', 'eventTypes of the new webhook');
  assertEq(JSON.stringify(createdHook.headers), '{"Authorization":"<redacted>"}', 'headers of the new webhook');
  assertEq(createdHook.ordering, 'fifo', 'ordering of the new webhook');
  ok('New webhook: created from the form with message:*, FIFO and a custom header, its whsec_ secret shown once');

  assertEq(await page.getByTestId('webhook-ordering').getAttribute('data-ordering'), 'fifo', 'ordering shown');
  assertEq((await page.getByTestId('webhook-header').textContent()).trim(), 'Authorization: <redacted>', 'header shown');
  assert(!(await page.content()).includes(HEADER_SECRET), 'the header value is nowhere on the page');
  // A delivery carries the header, in the publisher's trace; its page shows the trace-id.
  const traced = await api('POST', '/api/hooks/events', PUBLISHER_TOKEN,
    { type: 'message:sent', userId: 'user-123', source: 'whatsapp', payload: { text: 'traced' } },
    { traceparent: `00-${TRACE_ID}-00f067aa0ba902b7-01` });
  const arrived = await waitFor('the traced delivery at the receiver', async () =>
    received.find((r) => r.path === '/steady/browser' && r.body.includes(traced.id)));
  assertEq(arrived.headers.authorization, `Bearer ${HEADER_SECRET}`, 'the custom header at the receiver');
  assert(arrived.headers.traceparent.startsWith(`00-${TRACE_ID}-`), `traceparent ${arrived.headers.traceparent}`);
  const tracedDelivery = (await api('GET', `/api/hooks/webhooks/${createdId}/deliveries`, USER_TOKEN)).deliveries
    .find((d) => d.eventId === traced.id);
  await page.goto(`${BASE}/ui/#/webhooks/${createdId}/deliveries/${tracedDelivery.id}`);
  assertEq((await page.getByTestId('trace-id').textContent()).trim(), TRACE_ID, 'trace-id on the delivery page');
  await page.getByTestId('back-link').click();
  await created.waitFor();
  ok('the webhook page shows FIFO and the header by name only; the delivery page shows the trace-id');

  await page.getByTestId('edit-webhook').click();
  await page.getByTestId('name-input').fill('Renamed in the browser');
  await page.getByTestId('event-type-*').check();
  assertEq((await page.getByTestId('headers-kept').textContent()).includes('Authorization'), true, 'kept header named');
  await page.getByTestId('replace-headers').click();
  await page.getByTestId('save-webhook').click();
  await page.locator('[data-testid="webhook-detail"] h1').filter({ hasText: 'Renamed in the browser' }).waitFor();
  const edited = await api('GET', `/api/hooks/webhooks/${createdId}`, USER_TOKEN);
  assertEq(JSON.stringify(edited.eventTypes), '["*"]', 'eventTypes after the edit');
  assertEq(JSON.stringify(edited.headers), '{}', 'headers replaced by an empty set');
  assertEq(edited.ordering, 'fifo', 'ordering kept');
  await page.getByTestId('toggle-enabled').click();
  await page.locator('[data-testid="webhook-status"][data-status="disabled"]').waitFor();
  assertEq((await page.getByTestId('webhook-status').textContent()).trim(), 'Disabled', 'badge text');
  await waitFor('focus back on the Enable button', async () => (await focusedTestId(page)) === 'toggle-enabled');
  ok('Edit renames, subscribes to * and clears the headers, Disable shows the Disabled badge and keeps focus on the button');

  await page.getByTestId('rotate-secret').click();
  await page.getByTestId('confirm-rotate').click();
  const rotated = await page.getByTestId('rotate-dialog').getByTestId('secret-value').inputValue();
  assert(rotated.startsWith('whsec_') && rotated !== secretValue, 'a new secret is shown');
  assertEq(await focusedTestId(page), 'secret-value', 'focus after rotating');
  await page.keyboard.press('Escape');
  await page.keyboard.press('Escape');
  assertEq(await dialogOpen(page, 'rotate-dialog'), true, 'rotate dialog open after Esc twice');
  await page.getByTestId('secret-done').click();
  await page.getByTestId('rotate-dialog').waitFor({ state: 'detached' });
  ok('Rotate secret shows the new secret once, focused; Esc does not close it, Done does');

  await page.getByTestId('delete-webhook').click();
  await page.getByTestId('confirm-delete').click();
  await page.getByTestId('webhook-list').waitFor();
  await card(page, flaky.id).waitFor();
  assertEq(await card(page, createdId).count(), 0, 'cards of the deleted webhook');
  ok('Delete asks for confirmation and removes the webhook');

  // On the list, Disable keeps focus on that card's button after the list is drawn again.
  await card(page, steady.id).getByTestId('toggle-enabled').click();
  await card(page, steady.id).locator('[data-testid="status-badge"][data-status="disabled"]').waitFor();
  await waitFor('focus on the card\'s Enable button', () => page.evaluate((id) => {
    const el = document.activeElement;
    return el && el.dataset.testid === 'toggle-enabled' && el.closest('[data-testid="webhook-card"]').dataset.webhookId === id;
  }, steady.id));
  assertEq((await card(page, steady.id).getByTestId('toggle-enabled').textContent()), 'Enable', 'button text');
  ok('list: Disable redraws the card as Disabled with focus on its Enable button');

  // Leaving the form while the create request runs: the one-time secret is still shown,
  // Esc does not close it, and the page the user went to stays.
  await page.getByTestId('new-webhook').click();
  await page.getByTestId('name-input').fill('Left while saving');
  await page.getByTestId('url-input').fill(`${RECEIVER}/steady/left`);
  await page.getByTestId('event-type-agent:*').check();
  let release;
  const held = new Promise((resolve) => { release = resolve; });
  const createUrl = `${BASE}/api/hooks/webhooks`;
  const hold = async (r) => { if (r.request().method() === 'POST') await held; await r.continue(); };
  await page.route(createUrl, hold);
  const createRequest = page.waitForRequest((r) => r.method() === 'POST' && r.url() === createUrl);
  await page.getByTestId('save-webhook').click();
  await createRequest;
  await page.evaluate(() => { location.hash = '#/webhooks'; });
  await card(page, flaky.id).waitFor();
  release();
  const leftDialog = page.getByTestId('secret-dialog');
  await leftDialog.waitFor();
  assert(/^whsec_/.test(await leftDialog.getByTestId('secret-value').inputValue()), 'secret shown after leaving the form');
  await page.keyboard.press('Escape');
  await page.keyboard.press('Escape');
  assertEq(await dialogOpen(page, 'secret-dialog'), true, 'secret dialog open after Esc twice');
  await leftDialog.getByTestId('secret-done').click();
  await leftDialog.waitFor({ state: 'detached' });
  assertEq(await page.evaluate(() => location.hash), '#/webhooks', 'address after closing the dialog');
  await page.unroute(createUrl, hold);
  const left = (await api('GET', '/api/hooks/webhooks', USER_TOKEN)).find((w) => w.name === 'Left while saving');
  assert(left, 'the webhook created while away exists');
  await api('DELETE', `/api/hooks/webhooks/${left.id}`, USER_TOKEN);
  ok('create, then leave the form: the secret dialog still opens, ignores Esc, and the list stays');

  // A token that stops working: the two requests refused at once end the session once, and
  // the address stays, so signing in again returns to the same page.
  const hookHash = `#/webhooks/${flaky.id}`;
  const refuse = (r) => r.fulfill({ status: 401, contentType: 'application/json', body: '{"error":"token not accepted","code":"unauthorized"}' });
  const refusedUrls = (u) => /\/stats\?|\/deliveries\?/.test(u.pathname + u.search);
  await page.route(refusedUrls, refuse);
  await page.evaluate(() => {
    window.__flashes = 0;
    new MutationObserver((ms) => { for (const m of ms) window.__flashes += m.addedNodes.length; })
      .observe(document.getElementById('flash'), { childList: true });
  });
  const refusedBoth = Promise.all([
    page.waitForResponse((r) => r.status() === 401 && r.url().includes('/stats?')),
    page.waitForResponse((r) => r.status() === 401 && r.url().includes('/deliveries?')),
  ]);
  await page.evaluate((hash) => { location.hash = hash; }, hookHash);
  await refusedBoth;
  await page.getByTestId('token-input').waitFor();
  await page.getByTestId('flash-error').waitFor();
  const after401 = await page.evaluate(() => ({ hash: location.hash, flashes: window.__flashes, token: sessionStorage.getItem('hookd.userToken') }));
  assertEq(after401.hash, hookHash, 'address after the 401s');
  assertEq(after401.flashes, 1, 'messages shown for two 401s');
  assertEq(after401.token, null, 'token after the 401s');
  await page.unroute(refusedUrls, refuse);
  forgetExpected401s();
  await page.getByTestId('token-input').fill(USER_TOKEN);
  await page.getByTestId('sign-in').click();
  await page.locator(`[data-testid="webhook-detail"][data-webhook-id="${flaky.id}"]`).waitFor();
  await page.getByTestId('stats').waitFor();
  ok('two 401s at once: one message, sign-in on the same address, and back to that page after it');

  // A malformed address shows the not-found page instead of throwing.
  await page.evaluate(() => { location.hash = '#/webhooks/%E0'; });
  await page.locator('h1').filter({ hasText: 'Nothing here' }).waitFor();
  assertEq(await page.evaluate(() => document.activeElement.textContent), 'Nothing here', 'focus on the not-found page');
  ok('#/webhooks/%E0 shows the not-found page, its heading focused');

  // Sign out forgets the token.
  await page.getByTestId('sign-out').click();
  await page.getByTestId('token-input').waitFor();
  assertEq(await page.evaluate(() => sessionStorage.getItem('hookd.userToken')), null, 'token after sign-out');
  ok('Sign out clears the token and shows the sign-in form');

  // -- the operator page (admin token) -------------------------------------------------
  // A webhook of another name that fails now: the operator page lists it first, with the
  // notification its change made (no notifications.url here: recorded as skipped).
  const broken = await api('POST', '/api/hooks/webhooks', USER_TOKEN, {
    name: 'Broken receiver', url: `${RECEIVER}/broken`, eventTypes: ['agent:*'],
  });
  await publish('agent:error', { agentId: 'agent-1', error: 'timeout' });
  await waitFor('the broken webhook to be "failing"', async () => (await api('GET', `/api/hooks/webhooks/${broken.id}`, USER_TOKEN)).status === 'failing');
  await page.getByTestId('token-input').fill(ADMIN_TOKEN);
  await page.getByTestId('sign-in').click();
  await page.getByTestId('operator-tiles').waitFor();
  assertEq(await page.evaluate(() => location.hash), '#/operator', 'address after an admin sign-in');
  assertEq(await page.evaluate(() => sessionStorage.getItem('hookd.role')), 'admin', 'role kept for the tab');
  await page.locator('[data-testid="store-status"][data-status="ok"]').waitFor();
  const firstRow = page.getByTestId('operator-webhook').first();
  await firstRow.locator('[data-testid="status-badge"][data-status="failing"]').waitFor();
  assertEq(await firstRow.getAttribute('data-webhook-id'), broken.id, 'first webhook on the operator page');
  assertEq(await firstRow.getByTestId('operator-webhook-user').textContent(), 'user-123', 'its owner');
  const statuses = await page.getByTestId('operator-webhook').evaluateAll((rows) => rows.map((r) => r.dataset.status));
  const rank = { failing: 0, disabled: 1, healthy: 2 };
  assert(statuses.every((st, i) => i === 0 || rank[statuses[i - 1]] <= rank[st]), `failing, then disabled, then healthy: ${statuses}`);
  await page.getByTestId('attempts-chart').waitFor();
  await page.locator(`[data-testid="notification"][data-type="webhook.failing"][data-webhook-id="${broken.id}"][data-status="skipped"]`).waitFor();
  await noHorizontalOverflow(page, 'operator page at 1280px');
  await screenshot(page, 'operator-1280.png', true);
  ok('an admin token opens the operator page: store OK, the failing webhook first with its owner, its notification');

  // The page keeps itself current: a webhook disabled meanwhile shows up as disabled.
  await api('PATCH', `/api/hooks/webhooks/${broken.id}`, USER_TOKEN, { enabled: false });
  await page.locator(`[data-testid="operator-webhook"][data-webhook-id="${broken.id}"][data-status="disabled"]`).waitFor({ timeout: WAIT_MS });
  // An admin session cannot open the user pages: they lead back to the operator page.
  await page.evaluate(() => { location.hash = '#/webhooks'; });
  await waitFor('the operator page again', async () => (await page.evaluate(() => location.hash)) === '#/operator');
  await page.getByTestId('operator-tiles').waitFor();
  await phone.evaluate(() => sessionStorage.clear());
  await signIn(phone, ADMIN_TOKEN);
  await phone.getByTestId('operator-webhook').first().waitFor();
  await noHorizontalOverflow(phone, 'operator page at 390px');
  await page.getByTestId('sign-out').click();
  await page.getByTestId('token-input').waitFor();
  assertEq(await page.evaluate(() => sessionStorage.getItem('hookd.role')), null, 'role after sign-out');
  forgetRoleProbes(2);
  ok('the operator page refreshes itself, keeps an admin on it, fits a phone, and signs out');

  // Nothing went wrong inside the pages.
  const violations = [];
  for (const p of [page, phone]) violations.push(...await p.evaluate(() => window.__cspViolations));
  assert(violations.length === 0, `CSP violations: ${violations.join('; ')}`);
  assert(consoleErrors.length === 0, `console errors: ${consoleErrors.join('; ')}`);
  assert(pageErrors.length === 0, `page errors: ${pageErrors.join('; ')}`);
  assertEq(dialogs.length, 0, 'JavaScript dialogs opened');
  ok('no console errors, uncaught exceptions, CSP violations, JavaScript dialogs or off-origin requests');

  console.log(`all ${passed} checks passed`);
} catch (e) {
  exitCode = 1;
  console.log(`FAILED after ${passed} passing checks: ${e.stack || e}`);
  if (consoleErrors.length) console.log(`console errors so far: ${consoleErrors.join(' | ')}`);
  if (pageErrors.length) console.log(`page errors so far: ${pageErrors.join(' | ')}`);
} finally {
  if (browser) await browser.close().catch(() => {});
  receiver.close();
  receiver.closeAllConnections?.();
}
process.exit(exitCode);
