// Shared by the browser tests: settings from the environment, the Chromium
// launch, and the signed internal API, implemented here independently from
// the documented wire formats with node's crypto.
//
// Needs CHECKOUT_BASE_URL and INTERNAL_SECRET (from $STACK_DIR/service.env);
// importing this module throws, never skips, without them.

import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { createHmac, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const require = createRequire(join(ROOT, '.local/node/'));
const { chromium } = require(join(ROOT, '.local/node/node_modules/playwright-core'));

/** The named variables' values; throws, naming every missing one. */
export function requireEnv(...names) {
  const values = Object.fromEntries(names.map((name) => [name, process.env[name]]));
  const missing = names.filter((name) => !values[name]);
  if (missing.length) {
    throw new Error(
      `${missing.join(' and ')} not set: start the stack (infra/stack.sh start && infra/stack.sh serve) ` +
        'and `set -a; source "$STACK_DIR/env"; source "$STACK_DIR/service.env"; set +a` first',
    );
  }
  return values;
}

const env = requireEnv('CHECKOUT_BASE_URL', 'INTERNAL_SECRET');
export const BASE_URL = env.CHECKOUT_BASE_URL.replace(/\/+$/, '');
const SECRET = env.INTERNAL_SECRET;

export const SHOTS = join(ROOT, 'artifacts/browser');
export const STEP_MS = 5_000; // per browser action / navigation / HTTP call
export const TEST_MS = 30_000; // per test
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/**
 * Registers before/after hooks that run one headless Chromium with a fresh
 * profile for the file's tests. `browser.context` is set once `before` ran;
 * `browser.newPage(t)` gives a page closed after test `t`, with no cookies
 * left over from another test. `setup(context)`, if given, runs right after
 * the launch (one hook: the root's hooks do not wait for each other).
 */
export function useBrowser(profilePrefix, setup = async () => {}) {
  const browser = { context: null };
  let profileDir;
  before(async () => {
    mkdirSync(SHOTS, { recursive: true });
    profileDir = mkdtempSync(join(tmpdir(), profilePrefix));
    browser.context = await chromium.launchPersistentContext(profileDir, {
      executablePath: '/usr/bin/chromium',
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1280, height: 900 },
      timeout: 15_000,
    });
    browser.context.setDefaultTimeout(STEP_MS);
    browser.context.setDefaultNavigationTimeout(STEP_MS);
    await setup(browser.context);
  });
  after(async () => {
    await browser.context?.close();
    if (profileDir) rmSync(profileDir, { recursive: true, force: true });
  });
  browser.newPage = async (t) => {
    await browser.context.clearCookies();
    const page = await browser.context.newPage();
    t.after(() => page.close());
    return page;
  };
  return browser;
}

/** fetch bounded by STEP_MS; a failure names the request. */
export async function fetchStep(url, init = {}) {
  try {
    return await fetch(url, { ...init, signal: AbortSignal.timeout(STEP_MS) });
  } catch (err) {
    throw new Error(`${init.method ?? 'GET'} ${url}: ${err.message}`, { cause: err });
  }
}

export const rand = () => randomBytes(12).toString('hex'); // 24 alphanumerics

export const hmacHex = (message) => createHmac('sha256', SECRET).update(message).digest('hex');

// A signed internal request:
// v1=hex HMAC-SHA256(secret, "<timestamp>.<METHOD>.<path with query>.<raw body>").
// A signed write works once, and the same request signed in the same second
// is the same signature, so a repeat waits for the next second.
const issued = new Set();
async function internalRequest(method, path, payload) {
  const body = payload === undefined ? '' : JSON.stringify(payload);
  let timestamp;
  let signature;
  for (;;) {
    timestamp = String(Math.floor(Date.now() / 1000));
    signature = hmacHex(`${timestamp}.${method}.${path}.${body}`);
    if (method === 'GET' || !issued.has(signature)) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  issued.add(signature);
  const res = await fetchStep(BASE_URL + path, {
    method,
    headers: {
      ...(body ? { 'content-type': 'application/json' } : {}),
      'x-internal-timestamp': timestamp,
      'x-internal-signature': `v1=${signature}`,
    },
    body: body || undefined,
  });
  return { status: res.status, text: await res.text() };
}

/** Signed POST /api/internal/...; asserts the status, returns the JSON body. */
export async function internalPost(path, payload, expected = 200) {
  const { status, text } = await internalRequest('POST', path, payload);
  assert.equal(status, expected, `POST ${path}: ${status} ${text}`);
  return JSON.parse(text);
}

/** Signed GET /api/internal/...; asserts 200, returns the JSON body. */
export async function internalGet(path) {
  const { status, text } = await internalRequest('GET', path);
  assert.equal(status, 200, `GET ${path}: ${status} ${text}`);
  return JSON.parse(text);
}

export async function connectLink(storeId, returnUrl) {
  const link = await internalPost(`/api/internal/stores/${storeId}/connect-links`, {
    return_url: returnUrl,
  });
  assert.equal(link.store_id, storeId);
  assert.ok(link.url.startsWith(`${BASE_URL}/stripe/connect?`), link.url);
  return link.url;
}
