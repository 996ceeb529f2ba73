// Headless-browser tests of the merchant's Stripe connect flow, against a
// running local stack (infra/stack.sh start && infra/stack.sh serve).
//
//   set -a; source "$STACK_DIR/env"; source "$STACK_DIR/service.env"; set +a
//   node --test tests/browser/
//
// Needs CHECKOUT_BASE_URL and INTERNAL_SECRET (from $STACK_DIR/service.env);
// fails, never skips, without them. Screenshots go to artifacts/browser/.
//
// The internal API's request signing (support.mjs) and the connect link's
// signature (below) are implemented independently, from the documented wire
// formats, with node's crypto.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import {
  BASE_URL,
  SHOTS,
  TEST_MS,
  STEP_MS,
  connectLink as signedConnectLink,
  hmacHex,
  rand,
  useBrowser,
} from './support.mjs';

const RETURN_URL = 'http://localhost:3000/admin/payments';

const browser = useBrowser('connect-browser-test-');
const newPage = (t) => browser.newPage(t);
const connectLink = (storeId) => signedConnectLink(storeId, RETURN_URL);

async function stripeStatus(storeId) {
  const res = await fetch(`${BASE_URL}/stripe/status/${storeId}`, {
    signal: AbortSignal.timeout(STEP_MS),
  });
  assert.equal(res.status, 200);
  const status = await res.json();
  assert.equal(status.store_id, storeId);
  return status;
}

// Headers of the last form page opened (openForm), for failure messages.
let lastFormHeaders = {};

async function openForm(page, url) {
  const response = await page.goto(url);
  assert.equal(response.status(), 200, await response.text());
  assert.equal(await page.title(), 'Connect Stripe · checkout.best');
  lastFormHeaders = response.headers();
  return response;
}

// Clicks submit and returns the response to the form's POST /stripe/connect.
async function submit(page) {
  const posted = page.waitForResponse(
    (r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/stripe/connect',
  );
  await page.click('button[type=submit]');
  const response = await posted;
  await page.waitForLoadState('load');
  return response;
}

// Fails with what the server said and what the browser sent, e.g. a 403
// "not sent from our page" when the server refused the browser's Origin.
async function assertPostStatus(page, response, expected) {
  if (response.status() === expected) return;
  const said = await page
    .locator('[role=alert]')
    .first()
    .textContent({ timeout: 1_000 })
    .catch(() => '(no message)');
  const sent = await response.request().allHeaders();
  assert.fail(
    `POST /stripe/connect answered ${response.status()}, expected ${expected}: "${said.trim()}". ` +
      `The browser sent Origin: ${sent.origin ?? '(none)'}, Referer: ${sent.referer ?? '(none)'}; ` +
      `the form page was served with Referrer-Policy: ${lastFormHeaders['referrer-policy'] ?? '(none)'}`,
  );
}

async function fillAndSubmit(page, { pk, sk }) {
  await page.getByLabel('Publishable key').fill(pk);
  await page.getByLabel('Restricted key (recommended) or secret key').fill(sk);
  return submit(page);
}

// Submits keys that must be refused: the form comes back (422) with the
// message, the publishable key kept and the secret field empty.
async function submitExpectingError(page, keys) {
  const response = await fillAndSubmit(page, keys);
  await assertPostStatus(page, response, 422);
  assert.equal(new URL(page.url()).pathname, '/stripe/connect');
  const alert = page.locator('p.error[role=alert]');
  await alert.waitFor({ state: 'visible' });
  assert.equal(await page.locator('#publishable_key').inputValue(), keys.pk);
  assert.equal(await page.locator('#secret_key').inputValue(), '');
  return (await alert.textContent()).trim();
}

test('happy path: a signed link connects test keys', { timeout: TEST_MS }, async (t) => {
  const storeId = randomUUID();
  const page = await newPage(t);
  const response = await openForm(page, await connectLink(storeId));

  const headers = response.headers();
  assert.match(headers['content-security-policy'] ?? '', /frame-ancestors 'none'/);
  assert.match(headers['cache-control'] ?? '', /\bno-store\b/);

  await page.getByRole('heading', { name: 'Connect your Stripe account' }).waitFor();
  for (const [id, text] of [
    ['publishable_key', 'Publishable key'],
    ['secret_key', 'Restricted key (recommended) or secret key'],
    ['webhook_secret', 'Webhook signing secret (optional)'],
  ]) {
    assert.equal((await page.locator(`label[for=${id}]`).textContent()).trim(), text);
    await page.getByLabel(text).waitFor({ state: 'visible' }); // label really names the input
  }
  for (const name of ['store_id', 'return_url', 'expires', 'signature', 'csrf_token']) {
    assert.ok(await page.locator(`input[type=hidden][name=${name}]`).inputValue(), name);
  }
  assert.equal(await page.locator('input[name=store_id]').inputValue(), storeId);

  const r = rand();
  await page.getByLabel('Publishable key').fill(`pk_test_${r}`);
  await page.getByLabel('Restricted key (recommended) or secret key').fill(`sk_test_${r}`);
  await page.screenshot({ path: join(SHOTS, 'connect-form.png'), fullPage: true });
  const posted = await submit(page);
  await assertPostStatus(page, posted, 303);
  await page.waitForURL((u) => u.pathname.startsWith('/stripe/success/'));

  assert.equal(new URL(page.url()).pathname, `/stripe/success/${storeId}`);
  await page.getByRole('heading', { name: 'Stripe is connected' }).waitFor();
  assert.equal((await page.locator('#mode').textContent()).trim(), 'test');
  assert.equal(await page.locator('#back').getAttribute('href'), RETURN_URL);
  assert.ok((await page.textContent('main')).includes(`pk_test_${r}`));
  await page.screenshot({ path: join(SHOTS, 'connect-success.png'), fullPage: true });

  const status = await stripeStatus(storeId);
  assert.equal(status.has_stripe, true);
  assert.equal(status.is_live_mode, false);
});

test('a key Stripe refuses keeps the form, with the error', { timeout: TEST_MS }, async (t) => {
  const storeId = randomUUID();
  const page = await newPage(t);
  await openForm(page, await connectLink(storeId));

  const r = rand();
  const message = await submitExpectingError(page, { pk: `pk_test_${r}`, sk: `rk_test_${r}` });
  assert.match(message, /Invalid API key/);
  assert.ok(!(await page.content()).includes(`rk_test_${r}`), 'the secret is never echoed');
  await page.screenshot({ path: join(SHOTS, 'connect-invalid-key.png'), fullPage: true });

  assert.equal((await stripeStatus(storeId)).has_stripe, false);
});

test('keys of different modes are refused', { timeout: TEST_MS }, async (t) => {
  const storeId = randomUUID();
  const page = await newPage(t);
  await openForm(page, await connectLink(storeId));

  const r = rand();
  const message = await submitExpectingError(page, { pk: `pk_live_${r}`, sk: `sk_test_${r}` });
  assert.match(message, /same mode/);
  await page.screenshot({ path: join(SHOTS, 'connect-mode-mismatch.png'), fullPage: true });

  assert.equal((await stripeStatus(storeId)).has_stripe, false);
});

test('the form is usable on a phone (390x844)', { timeout: TEST_MS }, async (t) => {
  const page = await newPage(t);
  const viewport = { width: 390, height: 844 };
  await page.setViewportSize(viewport);
  await openForm(page, await connectLink(randomUUID()));

  const m = await page.evaluate(() => {
    const box = (el) => el.getBoundingClientRect();
    const button = document.querySelector('button[type=submit]');
    return {
      scrollWidth: document.documentElement.scrollWidth,
      inputHeights: [...document.querySelectorAll('input:not([type=hidden])')].map(
        (el) => box(el).height,
      ),
      button: { left: box(button).left, right: box(button).right, height: box(button).height },
    };
  });
  t.diagnostic(`phone layout: ${JSON.stringify(m)}`);

  const tallEnough = m.inputHeights.length === 3 && m.inputHeights.every((h) => h >= 44);
  const noHorizontalScroll = m.scrollWidth <= viewport.width;
  const buttonInView = m.button.left >= 0 && m.button.right <= viewport.width;
  await page.locator('button[type=submit]').scrollIntoViewIfNeeded();
  assert.ok(await page.locator('button[type=submit]').isVisible());
  assert.ok(
    tallEnough || (noHorizontalScroll && buttonInView),
    `neither inputs >= 44px tall nor the button reachable without horizontal scroll: ${JSON.stringify(m)}`,
  );
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: join(SHOTS, 'connect-phone.png'), fullPage: true });
});

test('a tampered link gets a 403 page that says it is invalid', { timeout: TEST_MS }, async (t) => {
  const page = await newPage(t);
  const url = new URL(await connectLink(randomUUID()));
  const sig = url.searchParams.get('signature');
  assert.match(sig, /^[0-9a-f]{64}$/);
  url.searchParams.set('signature', (sig[0] === '0' ? '1' : '0') + sig.slice(1));

  const response = await page.goto(url.href);
  assert.equal(response.status(), 403);
  const alert = page.getByRole('alert');
  await alert.waitFor();
  assert.match(await alert.textContent(), /link is invalid/);
  assert.match(await page.title(), /cannot be used/);
  assert.equal(await page.locator('form').count(), 0);
  await page.screenshot({ path: join(SHOTS, 'connect-tampered-link.png'), fullPage: true });
});

test('an expired link gets a 403 page that says it expired', { timeout: TEST_MS }, async (t) => {
  // Signed here, per the documented link format:
  // hex HMAC-SHA256(secret, "connect.<store_id>.<return_url>.<expires>").
  const page = await newPage(t);
  const storeId = randomUUID();
  const expires = String(Math.floor(Date.now() / 1000) - 60);
  const url = new URL('/stripe/connect', BASE_URL);
  url.searchParams.set('store_id', storeId);
  url.searchParams.set('return_url', RETURN_URL);
  url.searchParams.set('expires', expires);
  url.searchParams.set('signature', hmacHex(`connect.${storeId}.${RETURN_URL}.${expires}`));

  const response = await page.goto(url.href);
  assert.equal(response.status(), 403);
  assert.match(await page.getByRole('alert').textContent(), /link has expired/);
  assert.equal(await page.locator('form').count(), 0);
  await page.screenshot({ path: join(SHOTS, 'connect-expired-link.png'), fullPage: true });
});
