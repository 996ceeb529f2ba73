// Headless-browser tests of the customer's checkout page, against a running
// local stack (infra/stack.sh start && infra/stack.sh serve).
//
//   set -a; source "$STACK_DIR/env"; source "$STACK_DIR/service.env"; set +a
//   node --test tests/browser/
//
// Needs CHECKOUT_BASE_URL, INTERNAL_SECRET (from $STACK_DIR/service.env),
// STRIPE_API_BASE and STRIPE_JS_URL (from $STACK_DIR/env); fails, never skips,
// without them. Screenshots go to artifacts/browser/.
//
// Stripe.js: the page loads it from STRIPE_JS_URL. localstripe's mock there
// has no confirmPayment, so the browser gets our own small double instead
// (routed at STRIPE_JS_URL, so the page's CSP still applies to it). It has the
// Payment Element API the page uses; its confirmPayment does what Stripe's
// servers would, against the Stripe emulator's real state: create a card
// PaymentMethod, attach it to the intent, confirm, with the merchant's secret
// key. Those calls are made from the test side (page.exposeFunction), not
// from the page: localstripe's CORS answer allows only Content-Type and
// Accept, and it answers the preflight with 401, so a browser call carrying
// `Authorization: Bearer sk_...` is refused (it also keeps the secret key out
// of the page). Then, like Stripe.js, the double redirects to return_url with
// payment_intent, payment_intent_client_secret and redirect_status, or
// resolves `{error}` on a decline.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import {
  BASE_URL,
  SHOTS,
  TEST_MS,
  connectLink,
  fetchStep,
  internalGet,
  internalPost,
  rand,
  requireEnv,
  useBrowser,
} from './support.mjs';

const { STRIPE_API_BASE, STRIPE_JS_URL } = requireEnv('STRIPE_API_BASE', 'STRIPE_JS_URL');
const STRIPE_API = STRIPE_API_BASE.endsWith('/') ? STRIPE_API_BASE : `${STRIPE_API_BASE}/`;

let servedStripeJs = 0; // how often the double was served instead of STRIPE_JS_URL
const browser = useBrowser('checkout-browser-test-', (context) =>
  context.route(
    (url) => url.href === STRIPE_JS_URL,
    (route) => {
      servedStripeJs += 1;
      return route.fulfill({
        status: 200,
        contentType: 'application/javascript; charset=utf-8',
        body: `(${stripeDouble})();\n`,
      });
    },
  ),
);

// ---------------------------------------------------------------------------
// The Stripe.js double. Runs in the page: self-contained, old-style JS.
// window.__stripeDouble exposes what it was given, for assertions.
// ---------------------------------------------------------------------------
function stripeDouble() {
  var seen = (window.__stripeDouble = {
    publishableKey: null,
    clientSecret: null,
    mounted: false,
    confirmCalls: 0,
  });
  var instances = new WeakMap(); // elements -> { clientSecret, read() }

  function field(host, id, label, attrs) {
    var l = document.createElement('label');
    l.htmlFor = id;
    l.textContent = label;
    var input = document.createElement('input');
    input.type = 'text';
    input.id = id;
    Object.keys(attrs).forEach(function (k) {
      input.setAttribute(k, attrs[k]);
    });
    host.appendChild(l);
    host.appendChild(input);
    return input;
  }

  function incomplete(code, message) {
    return Promise.resolve({ error: { type: 'validation_error', code: code, message: message } });
  }

  window.Stripe = function Stripe(publishableKey) {
    if (typeof publishableKey !== 'string' || !/^pk_(test|live)_\w+$/.test(publishableKey)) {
      throw new Error('IntegrationError: Invalid API Key provided: ' + publishableKey);
    }
    seen.publishableKey = publishableKey;
    return {
      elements: function (options) {
        var secret = options && options.clientSecret;
        if (typeof secret !== 'string' || !/^pi_\w+_secret_\w+$/.test(secret)) {
          throw new Error('IntegrationError: elements() needs a PaymentIntent clientSecret');
        }
        seen.clientSecret = secret;
        var inputs = null;
        var elements = {
          create: function (type) {
            if (type !== 'payment') throw new Error('IntegrationError: the double has no ' + type + ' element');
            return {
              mount: function (target) {
                var host = typeof target === 'string' ? document.querySelector(target) : target;
                if (!host) throw new Error('IntegrationError: no mount target ' + target);
                inputs = {
                  number: field(host, 'sd-card-number', 'Card number', {
                    inputmode: 'numeric',
                    autocomplete: 'cc-number',
                    placeholder: '1234 1234 1234 1234',
                  }),
                  expiry: field(host, 'sd-card-expiry', 'Expiration date (MM / YY)', {
                    inputmode: 'numeric',
                    autocomplete: 'cc-exp',
                    placeholder: 'MM / YY',
                  }),
                  cvc: field(host, 'sd-card-cvc', 'Security code (CVC)', {
                    inputmode: 'numeric',
                    autocomplete: 'cc-csc',
                    placeholder: 'CVC',
                  }),
                };
                seen.mounted = true;
              },
            };
          },
        };
        instances.set(elements, {
          clientSecret: secret,
          read: function () {
            return inputs && {
              number: inputs.number.value.replace(/\s+/g, ''),
              expiry: inputs.expiry.value,
              cvc: inputs.cvc.value.trim(),
            };
          },
        });
        return elements;
      },

      confirmPayment: function (options) {
        seen.confirmCalls += 1;
        var instance = options && instances.get(options.elements);
        if (!instance) return Promise.reject(new Error('IntegrationError: confirmPayment needs `elements`'));
        var returnUrl = options.confirmParams && options.confirmParams.return_url;
        if (!returnUrl) return Promise.reject(new Error('IntegrationError: return_url is required'));
        var card = instance.read();
        if (!card) return Promise.reject(new Error('IntegrationError: the Payment Element is not mounted'));
        if (!/^\d{12,19}$/.test(card.number)) return incomplete('incomplete_number', 'Your card number is incomplete.');
        var exp = /^\s*(\d{1,2})\s*\/\s*(\d{2})\s*$/.exec(card.expiry);
        if (!exp) return incomplete('incomplete_expiry', "Your card's expiration date is incomplete.");
        if (!/^\d{3,4}$/.test(card.cvc)) return incomplete('incomplete_cvc', "Your card's security code is incomplete.");

        var intentId = instance.clientSecret.split('_secret_')[0];
        return window
          .__stripeServers({
            publishableKey: seen.publishableKey,
            intentId: intentId,
            card: { number: card.number, exp_month: exp[1], exp_year: '20' + exp[2], cvc: card.cvc },
          })
          .then(function (res) {
            if (res.status === 200 && res.body.status === 'succeeded') {
              var url = new URL(returnUrl);
              url.searchParams.set('payment_intent', intentId);
              url.searchParams.set('payment_intent_client_secret', instance.clientSecret);
              url.searchParams.set('redirect_status', 'succeeded');
              window.location.assign(url.href);
              return new Promise(function () {}); // like Stripe.js: no result when it redirects
            }
            var err = (res.body && res.body.error) || {};
            return {
              error: {
                type: res.status === 402 ? 'card_error' : err.type || 'api_error',
                code: err.code,
                message: err.message || 'Unexpected answer ' + res.status + ' (' + (res.body && res.body.status) + ')',
              },
            };
          });
      },
    };
  };
}

// ---------------------------------------------------------------------------
// Test side: the Stripe emulator, the shop, the session.
// ---------------------------------------------------------------------------

async function stripeCall(secretKey, method, path, form) {
  const res = await fetchStep(new URL(`v1${path}`, STRIPE_API).href, {
    method,
    headers: { authorization: `Bearer ${secretKey}` },
    body: form ? new URLSearchParams(form) : undefined,
  });
  const text = await res.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    body = { raw: text };
  }
  return { status: res.status, body };
}

// What Stripe's servers do when the customer confirms the Payment Element,
// done in the emulator with the merchant's secret key. Every call is logged
// in `calls` for the test to look at.
function stripeServers(shop, calls) {
  return async ({ publishableKey, intentId, card }) => {
    if (publishableKey !== shop.pk) {
      // Stripe: an intent of another account does not exist for this key.
      return {
        status: 404,
        body: { error: { type: 'invalid_request_error', message: `No such payment_intent: '${intentId}'` } },
      };
    }
    const steps = [
      ['POST', '/payment_methods', () => ({
        type: 'card',
        'card[number]': card.number,
        'card[exp_month]': card.exp_month,
        'card[exp_year]': card.exp_year,
        'card[cvc]': card.cvc,
      })],
      ['POST', `/payment_intents/${intentId}`, (pm) => ({ payment_method: pm.id })],
      ['POST', `/payment_intents/${intentId}/confirm`, () => ({})],
    ];
    let previous;
    for (const [method, path, form] of steps) {
      const res = await stripeCall(shop.sk, method, path, form(previous));
      calls.push({ path, status: res.status });
      if (res.status !== 200) return res;
      previous = res.body;
    }
    return { status: 200, body: previous };
  };
}

/** The value of a hidden input in a rendered form, entities decoded. */
function hiddenField(html, name) {
  const m = new RegExp(`<input type="hidden" name="${name}" value="([^"]*)"`).exec(html);
  assert.ok(m, `no hidden field ${name} in the connect form`);
  return m[1]
    .replace(/&#(\d+);/g, (_, d) => String.fromCharCode(Number(d)))
    .replace(/&#x([0-9a-f]+);/gi, (_, h) => String.fromCharCode(parseInt(h, 16)))
    .replace(/&quot;/g, '"')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');
}

/** A store connected through the real connect form, with fresh test keys. */
async function connectedShop() {
  const storeId = randomUUID();
  const r = rand();
  const shop = { storeId, pk: `pk_test_${r}`, sk: `sk_test_${r}` };
  const form = await fetchStep(await connectLink(storeId, 'http://localhost:3000/admin'));
  const html = await form.text();
  assert.equal(form.status, 200, html);
  const fields = new URLSearchParams();
  for (const name of ['store_id', 'return_url', 'expires', 'signature', 'csrf_token']) {
    fields.set(name, hiddenField(html, name));
  }
  fields.set('publishable_key', shop.pk);
  fields.set('secret_key', shop.sk);
  const res = await fetchStep(`${BASE_URL}/stripe/connect`, {
    method: 'POST',
    headers: { origin: BASE_URL, 'content-type': 'application/x-www-form-urlencoded' },
    body: fields,
    redirect: 'manual',
  });
  assert.equal(res.status, 303, `connect: ${res.status} ${await res.text()}`);
  return shop;
}

async function newSession(shop, extra = {}) {
  const session = await internalPost(
    '/api/internal/checkout-sessions',
    {
      store_id: shop.storeId,
      currency: 'eur',
      line_items: [
        { name: 'Blue mug', unit_amount: 1250, quantity: 2 },
        { name: 'Shipping', unit_amount: 499, quantity: 1 },
      ],
      store_name: "Ann's Mugs",
      ...extra,
    },
    201,
  );
  assert.ok(session.checkout_url.startsWith(`${BASE_URL}/checkout/`), session.checkout_url);
  return session;
}

const getOrder = (orderId) => internalGet(`/api/internal/orders/${orderId}`);

/**
 * Opens the checkout page of a fresh shop's fresh session, with the double's
 * emulator calls bound to that shop's keys, and waits until the page's
 * script mounted the Payment Element and enabled the pay button.
 * `session(shop)` gives extra fields for the session.
 */
async function openCheckout(t, { viewport, session: extra = () => ({}) } = {}) {
  const shop = await connectedShop();
  const session = await newSession(shop, extra(shop));
  const page = await browser.newPage(t);
  if (viewport) await page.setViewportSize(viewport);

  const problems = []; // uncaught errors and CSP refusals in the page
  page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error' && /Content Security Policy|Refused to/i.test(msg.text())) {
      problems.push(`console: ${msg.text()}`);
    }
  });
  const stripeCalls = [];
  await page.exposeFunction('__stripeServers', stripeServers(shop, stripeCalls));

  const served = servedStripeJs;
  const intentResponse = page.waitForResponse(
    (r) => r.request().method() === 'POST' && r.url().endsWith('/payment-intent'),
  );
  const response = await page.goto(session.checkout_url);
  assert.equal(response.status(), 200, await response.text());
  const intent = await (await intentResponse).json();
  await page.locator('#pay:enabled').waitFor();
  assert.equal(servedStripeJs, served + 1, 'the page loaded Stripe.js from STRIPE_JS_URL');
  return { shop, session, page, response, intent, problems, stripeCalls };
}

async function pay(page, number) {
  await page.getByLabel('Card number').fill(number);
  await page.getByLabel('Expiration date (MM / YY)').fill('12 / 34');
  await page.getByLabel('Security code (CVC)').fill('123');
  await page.locator('#pay').click();
}

const intentIdOf = (clientSecret) => clientSecret.split('_secret_')[0];

// ---------------------------------------------------------------------------

test('the page shows the order, test mode, and loads the merchant key', { timeout: TEST_MS }, async (t) => {
  const { shop, page, response, intent, problems } = await openCheckout(t);

  const headers = response.headers();
  const csp = headers['content-security-policy'] ?? '';
  t.diagnostic(`CSP: ${csp}`);
  assert.match(csp, /frame-ancestors 'none'/);
  assert.match(headers['cache-control'] ?? '', /\bno-store\b/);
  assert.match(csp, new RegExp(`script-src 'nonce-[^' ]+' [^;]*${new URL(STRIPE_JS_URL).origin}`));
  assert.match(csp, new RegExp(`connect-src 'self' [^;]*${new URL(STRIPE_API).origin}`));

  assert.equal(await page.title(), 'Pay 29.99 EUR · checkout.best');
  await page.getByRole('heading', { name: "Ann's Mugs" }).waitFor();
  const rows = await page.locator('table.items tbody tr').evaluateAll((trs) =>
    trs.map((tr) => [...tr.cells].map((c) => c.textContent.trim())),
  );
  assert.deepEqual(rows, [
    ['Blue mug', '2', '25.00 EUR'],
    ['Shipping', '1', '4.99 EUR'],
  ]);
  assert.equal((await page.locator('#total').textContent()).trim(), '29.99 EUR');
  assert.equal((await page.locator('#pay').textContent()).trim(), 'Pay 29.99 EUR');

  const banner = page.locator('#test-mode');
  await banner.waitFor({ state: 'visible' });
  assert.match(await banner.textContent(), /4242 4242 4242 4242/);

  // The server handed out this shop's intent and key; the double got both.
  assert.equal(intent.publishable_key, shop.pk);
  assert.equal(intent.amount, 2999);
  assert.equal(intent.currency, 'eur');
  const seen = await page.evaluate(() => window.__stripeDouble);
  assert.equal(seen.publishableKey, shop.pk);
  assert.equal(seen.clientSecret, intent.client_secret);
  assert.equal(seen.mounted, true);
  for (const label of ['Card number', 'Expiration date (MM / YY)', 'Security code (CVC)']) {
    await page.getByLabel(label).waitFor({ state: 'visible' });
  }
  assert.equal(await page.locator('#payment-message').isHidden(), true);
  assert.deepEqual(problems, []);
  await page.screenshot({ path: join(SHOTS, 'checkout-page.png'), fullPage: true });
});

test('paying with 4242 4242 4242 4242 ends on the receipt, the order is paid', { timeout: TEST_MS }, async (t) => {
  const { shop, session, page, intent, problems, stripeCalls } = await openCheckout(t);
  const intentId = intentIdOf(intent.client_secret);

  // Stripe.js returns the customer to /complete with the intent in the
  // query; the server answers with a redirect to the clean checkout URL.
  const returned = page.waitForRequest((r) => new URL(r.url()).pathname.endsWith('/complete'));
  await pay(page, '4242 4242 4242 4242');
  const back = new URL((await returned).url());
  assert.equal(back.searchParams.get('payment_intent'), intentId);
  assert.equal(back.searchParams.get('redirect_status'), 'succeeded');
  assert.deepEqual(
    stripeCalls.map((c) => c.status),
    [200, 200, 200],
    JSON.stringify(stripeCalls),
  );

  await page.getByRole('heading', { name: 'Payment received' }).waitFor();
  const landed = new URL(page.url());
  assert.ok(!landed.pathname.endsWith('/complete') && landed.search === '', `the client secret left the address bar: ${landed}`);
  assert.equal((await page.locator('#order-id').textContent()).trim(), session.order_id);
  assert.match(await page.textContent('main'), /29\.99 EUR/);
  assert.deepEqual(problems, []);
  await page.screenshot({ path: join(SHOTS, 'checkout-paid.png'), fullPage: true });

  const order = await getOrder(session.order_id);
  assert.equal(order.status, 'paid', JSON.stringify(order));
  assert.equal(order.payment_intent_id, intentId);
  const { body: pi } = await stripeCall(shop.sk, 'GET', `/payment_intents/${intentId}`);
  assert.equal(pi.status, 'succeeded');
  assert.deepEqual([pi.amount, pi.currency, pi.metadata?.order_id], [2999, 'eur', session.order_id]);
});

test('a declined card shows the reason and the order is not paid', { timeout: TEST_MS }, async (t) => {
  const { session, page, problems, stripeCalls } = await openCheckout(t);
  const checkoutPath = new URL(page.url()).pathname;

  await pay(page, '4000 0000 0000 0341');
  const message = page.locator('#payment-message');
  await message.waitFor({ state: 'visible' });
  assert.equal(await message.getAttribute('role'), 'alert');
  assert.match(await message.textContent(), /declined/i);
  assert.deepEqual(
    stripeCalls.map((c) => c.status),
    [200, 200, 402],
    JSON.stringify(stripeCalls),
  );
  assert.equal(new URL(page.url()).pathname, checkoutPath, 'stays on the checkout page');
  await page.locator('#pay:enabled').waitFor(); // the customer may try another card
  assert.deepEqual(problems, []);
  await page.screenshot({ path: join(SHOTS, 'checkout-declined.png'), fullPage: true });

  const order = await getOrder(session.order_id);
  t.diagnostic(`order after the decline: ${order.status}`);
  assert.ok(['pending', 'failed'].includes(order.status), JSON.stringify(order));
});

test('the page is usable on a phone (390x844)', { timeout: TEST_MS }, async (t) => {
  const viewport = { width: 390, height: 844 };
  const { page } = await openCheckout(t, { viewport });

  const m = await page.evaluate(() => ({
    scrollWidth: document.documentElement.scrollWidth,
    bodyScrollWidth: document.body.scrollWidth,
  }));
  t.diagnostic(`phone layout: ${JSON.stringify(m)}`);
  assert.ok(
    m.scrollWidth <= viewport.width && m.bodyScrollWidth <= viewport.width,
    `horizontal scroll: ${JSON.stringify(m)}`,
  );
  const pay = page.locator('#pay');
  await pay.scrollIntoViewIfNeeded();
  assert.ok(await pay.isVisible());
  const box = await pay.boundingBox();
  assert.ok(box.x >= 0 && box.x + box.width <= viewport.width && box.height >= 44, JSON.stringify(box));
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: join(SHOTS, 'checkout-phone.png'), fullPage: true });
});

test('an unknown token gets a 404 page', { timeout: TEST_MS }, async (t) => {
  const page = await browser.newPage(t);
  const response = await page.goto(`${BASE_URL}/checkout/${'A'.repeat(43)}`);
  assert.equal(response.status(), 404);
  assert.equal(await page.title(), 'Not found · checkout.best');
  await page.getByRole('heading', { name: 'Not found' }).waitFor();
  assert.match(await page.getByRole('alert').textContent(), /not valid/);
  assert.equal(await page.locator('#payment-form').count(), 0);
  assert.match(response.headers()['content-security-policy'] ?? '', /frame-ancestors 'none'/);
  await page.screenshot({ path: join(SHOTS, 'checkout-unknown.png'), fullPage: true });
});

test("paying goes on to the shop's success_url with the order id", { timeout: TEST_MS }, async (t) => {
  // A real page of ours stands in for the shop's.
  const successUrl = (shop) => `${BASE_URL}/stripe/status/${shop.storeId}`;
  const { shop, session, page } = await openCheckout(t, {
    session: (shop) => ({ success_url: successUrl(shop) }),
  });

  await pay(page, '4242424242424242');
  await page.waitForURL((u) => u.pathname === `/stripe/status/${shop.storeId}`);
  assert.equal(new URL(page.url()).searchParams.get('order_id'), session.order_id);
  assert.equal((await getOrder(session.order_id)).status, 'paid');
});
