#!/usr/bin/env python3
"""Smoke test for any deployment of checkout.best: the README's BMOS flow, end to end.

    INTERNAL_SECRET=... infra/smoke.py BASE_URL [options]
    make smoke BASE=https://pay.example.com [SMOKE_ARGS="--connected-store <uuid>"]

BASE_URL is the origin the API answers on (the stack's ApiUrl output or the custom
domain), e.g. https://pay.example.com or http://127.0.0.1:9000; a trailing slash is
fine. INTERNAL_SECRET is the BMOS authentication secret (the value of the stack's
Secrets Manager secret <stack>-bmos-auth; README "Deploy", step 1).

Checks, one line each, stopping at the first failure (exit status 1):
  - the public status of an unknown (random) store: has_stripe false
  - the internal API refuses a call without credentials (401)
  - a signed connect link from the internal API, and the connect form it opens
  - the internal status of that store, with a signed request and with the plain
    X-Internal-Secret header: not connected
  - with --connected-store ID: a checkout session for that store, its payment page
    and the order it created (pending)
  - with --connect-with-test-key: first connects the random store through the form
    with test-mode keys, then the checkout steps for it, then disconnects it again

What it leaves behind: with --connected-store or --connect-with-test-key, one pending
order (EUR 12.50 unless --amount/--currency say otherwise; nobody pays it, it expires)
and, for --connect-with-test-key, the audit entries of the connect and the disconnect.

--connect-with-test-key uses STRIPE_TEST_PUBLISHABLE_KEY / STRIPE_TEST_SECRET_KEY
(a real Stripe account's test-mode keys; connecting registers, and disconnecting
deletes, a webhook endpoint in that account) when set, else made-up pk_test_/sk_test_
keys that only the local Stripe emulator accepts. It is never done by default.

Never prints the secret, keys, link signatures, CSRF or checkout tokens.
Needs Python 3.9+ and `requests`.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import html.parser
import json
import os
import re
import secrets
import sys
import time
import urllib.parse
import uuid

try:
    import requests
except ImportError:  # pragma: no cover - message for operators
    sys.exit("smoke.py needs the `requests` package (pip install requests, or use .local/venv/bin/python)")

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


class SmokeFailure(Exception):
    pass


class Redactor:
    """Removes anything secret from text we might print."""

    PATTERNS = [
        (re.compile(r"(signature=)[^&\s\"'<>]+"), r"\1[redacted]"),
        (re.compile(r"(csrf_token[\"']?\s*(?:value=|[:=])\s*[\"']?)[^\"'&\s<>]+"), r"\1[redacted]"),
        (re.compile(r"(/checkout/)[^/?\s\"'<>]+"), r"\1[token]"),
        (re.compile(r"\b(sk|rk)_(test|live)_[A-Za-z0-9_]+"), r"\1_\2_[redacted]"),
        (re.compile(r"\bwhsec_[A-Za-z0-9_]+"), "whsec_[redacted]"),
        (re.compile(r"(?i)(bearer\s+)\S+"), r"\1[redacted]"),
    ]

    def __init__(self, *secrets_: str):
        self.secrets = [s for s in secrets_ if s]

    def add(self, value: str) -> None:
        if value:
            self.secrets.append(value)

    def __call__(self, text: str) -> str:
        for value in self.secrets:
            text = text.replace(value, "[redacted]")
        for pattern, repl in self.PATTERNS:
            text = pattern.sub(repl, text)
        return text


class FormParser(html.parser.HTMLParser):
    """The first <form>'s action and its inputs (name -> value)."""

    def __init__(self):
        super().__init__()
        self.action = None
        self.inputs: dict[str, str] = {}
        self.errors: list[str] = []
        self._in_form = False
        self._done = False
        self._in_error = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form" and not self._done:
            self._in_form = True
            self.action = attrs.get("action") or ""
        elif tag == "input" and self._in_form and attrs.get("name"):
            self.inputs[attrs["name"]] = attrs.get("value") or ""
        if "error" in (attrs.get("class") or "").split():
            self._in_error = True

    def handle_endtag(self, tag):
        if tag == "form" and self._in_form:
            self._in_form, self._done = False, True
        if tag == "p":
            self._in_error = False

    def handle_data(self, data):
        if self._in_error and data.strip():
            self.errors.append(data.strip())


class Smoke:
    def __init__(self, base: str, secret: str, timeout: float):
        self.base = base
        self.secret = secret.encode()
        self.timeout = timeout
        self.redact = Redactor(secret)
        self.http = requests.Session()
        self.http.headers["User-Agent"] = "checkout-best-smoke/1"
        self.steps = 0

    # --- reporting -------------------------------------------------------

    def ok(self, started: float, message: str) -> None:
        self.steps += 1
        ms = (time.monotonic() - started) * 1000
        print(f"ok   {self.redact(message)} ({ms:.0f} ms)", flush=True)

    def fail(self, message: str, response: requests.Response | None = None) -> SmokeFailure:
        if response is not None:
            message += f"\n     got {response.status_code} {response.headers.get('content-type', '-')}: {self.describe(response)}"
        return SmokeFailure(self.redact(message))

    def describe(self, response: requests.Response) -> str:
        try:
            error = response.json().get("error", {})
            if error.get("code"):
                return f"{error['code']}: {error.get('message', '')}"
        except (ValueError, AttributeError):
            pass
        text = re.sub(r"\s+", " ", response.text or "").strip()
        return (text[:300] + "...") if len(text) > 300 else (text or "(empty body)")

    # --- HTTP ------------------------------------------------------------

    def request(self, method: str, url: str, **kwargs) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        kwargs.setdefault("allow_redirects", False)
        try:
            return self.http.request(method, url, **kwargs)
        except requests.RequestException as err:
            path = urllib.parse.urlsplit(url).path
            raise self.fail(f"{method} {path}: no answer from {self.base} ({type(err).__name__}: {err})") from None

    def internal(self, method: str, path: str, payload=None, auth: str = "signed") -> requests.Response:
        """A call to /api/internal/...: signed (README "How BMOS integrates"), plain secret, or none."""
        body = b"" if payload is None else json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"} if body else {}
        if auth == "signed":
            ts = str(int(time.time()))
            message = f"{ts}.{method}.{path}.".encode() + body
            headers["X-Internal-Timestamp"] = ts
            headers["X-Internal-Signature"] = "v1=" + hmac.new(self.secret, message, hashlib.sha256).hexdigest()
        elif auth == "secret":
            headers["X-Internal-Secret"] = self.secret.decode()
        return self.request(method, self.base + path, data=body or None, headers=headers)

    def json_of(self, response: requests.Response, what: str) -> dict:
        try:
            data = response.json()
        except ValueError:
            raise self.fail(f"{what}: the body is not JSON", response) from None
        if not isinstance(data, dict):
            raise self.fail(f"{what}: expected a JSON object", response)
        return data

    def expect(self, response: requests.Response, status: int, what: str, content_type: str) -> None:
        if response.status_code != status:
            raise self.fail(f"{what}: expected {status}", response)
        got = response.headers.get("content-type", "")
        if not got.startswith(content_type):
            raise self.fail(f"{what}: expected {content_type}, got {got or 'no content type'}", response)

    # --- the checks --------------------------------------------------------

    def public_status(self, store_id: str, connected: bool) -> None:
        t = time.monotonic()
        path = f"/stripe/status/{store_id}"
        r = self.request("GET", self.base + path)
        self.expect(r, 200, f"GET {path}", "application/json")
        status = self.json_of(r, f"GET {path}")
        if status.get("store_id") != store_id or status.get("has_stripe") is not connected:
            raise self.fail(f"GET {path}: expected store_id {store_id} and has_stripe {str(connected).lower()}, got {status}")
        if r.headers.get("access-control-allow-origin") != "*":
            raise self.fail(f"GET {path}: Access-Control-Allow-Origin is not *", r)
        self.ok(t, f"public status of store {store_id}: 200, has_stripe {str(connected).lower()}")

    def unauthenticated_refused(self, store_id: str) -> None:
        t = time.monotonic()
        path = f"/api/internal/stores/{store_id}/stripe-status"
        r = self.internal("GET", path, auth="none")
        self.expect(r, 401, f"GET {path} without credentials", "application/json")
        self.ok(t, "internal API without credentials: 401")

    def connect_link(self, store_id: str, return_url: str) -> str:
        t = time.monotonic()
        path = f"/api/internal/stores/{store_id}/connect-links"
        r = self.internal("POST", path, {"return_url": return_url, "expires_in": 600})
        self.expect(r, 200, f"POST {path} (signed)", "application/json")
        link = self.json_of(r, f"POST {path}")
        url = link.get("url")
        if not isinstance(url, str):
            raise self.fail(f"POST {path}: no url in the answer, got keys {sorted(link)}")
        self.redact.add(url)
        parts = urllib.parse.urlsplit(url)
        query = urllib.parse.parse_qs(parts.query)
        if link.get("store_id") != store_id or parts.path != "/stripe/connect" or query.get("store_id") != [store_id]:
            raise self.fail(f"POST {path}: the link is not /stripe/connect for store {store_id}")
        if not isinstance(link.get("expires_at"), int) or link["expires_at"] <= time.time():
            raise self.fail(f"POST {path}: expires_at is not in the future: {link.get('expires_at')}")
        origin = f"{parts.scheme}://{parts.netloc}"
        where = "" if origin == self.base else f", pointing at {origin} (PUBLIC_BASE_URL)"
        self.ok(t, f"signed connect link from the internal API: 200, /stripe/connect for this store, "
                   f"expires in {link['expires_at'] - int(time.time())} s{where}")
        return url

    def connect_form(self, url: str) -> FormParser:
        t = time.monotonic()
        r = self.request("GET", url)
        self.expect(r, 200, "GET /stripe/connect (the signed link)", "text/html")
        form = FormParser()
        form.feed(r.text)
        if form.action is None or "csrf_token" not in form.inputs or "publishable_key" not in form.inputs:
            raise self.fail("GET /stripe/connect: the page has no key form with a CSRF token")
        self.ok(t, "connect form opens from the link: 200 text/html, key form with CSRF token")
        return form

    def internal_status(self, store_id: str, connected: bool, auth: str = "signed") -> dict:
        t = time.monotonic()
        path = f"/api/internal/stores/{store_id}/stripe-status"
        how = "signed" if auth == "signed" else "X-Internal-Secret"
        r = self.internal("GET", path, auth=auth)
        self.expect(r, 200, f"GET {path} ({how})", "application/json")
        status = self.json_of(r, f"GET {path}")
        if status.get("store_id") != store_id or status.get("has_stripe") is not connected:
            raise self.fail(f"GET {path}: expected has_stripe {str(connected).lower()} for store {store_id}, "
                            f"got has_stripe {status.get('has_stripe')}")
        detail = (f"connected in {status.get('mode')} mode, {status.get('key_kind')} key, "
                  f"webhook {'configured' if status.get('webhook_configured') else 'not configured'}"
                  if connected else "not connected")
        self.ok(t, f"internal status ({how}): 200, {detail}")
        return status

    def connect(self, link_url: str, form: FormParser, store_id: str, publishable: str, secret_key: str) -> None:
        t = time.monotonic()
        self.redact.add(secret_key)
        parts = urllib.parse.urlsplit(link_url)
        origin = f"{parts.scheme}://{parts.netloc}"
        fields = dict(form.inputs)
        fields.update(publishable_key=publishable, secret_key=secret_key, webhook_secret="")
        r = self.request("POST", urllib.parse.urljoin(link_url, form.action), data=fields,
                         headers={"Origin": origin, "Referer": link_url})
        if r.status_code != 303:
            page = FormParser()
            page.feed(r.text or "")
            reason = "; ".join(page.errors)
            raise self.fail("POST /stripe/connect with test-mode keys: expected 303 to the success page"
                            + (f" (the form says: {reason})" if reason else ""), r)
        location = urllib.parse.urljoin(link_url, r.headers.get("location", ""))
        if urllib.parse.urlsplit(location).path != f"/stripe/success/{store_id}":
            raise self.fail("POST /stripe/connect: redirected somewhere else than /stripe/success/<store>")
        self.ok(t, "connect form accepts test-mode keys: 303 to the success page")
        t = time.monotonic()
        r = self.request("GET", location)
        self.expect(r, 200, f"GET /stripe/success/{store_id}", "text/html")
        self.ok(t, "success page: 200 text/html")

    def checkout(self, store_id: str, amount: int, currency: str) -> None:
        t = time.monotonic()
        path = "/api/internal/checkout-sessions"
        cart = {
            "store_id": store_id,
            "currency": currency,
            "line_items": [{"name": "Smoke test item", "unit_amount": amount, "quantity": 1}],
            "metadata": {"source": "infra/smoke.py"},
        }
        r = self.internal("POST", path, cart)
        if r.status_code == 404:
            raise self.fail(f"POST {path}: store {store_id} has not connected Stripe (is --connected-store right?)", r)
        self.expect(r, 201, f"POST {path} (signed)", "application/json")
        session = self.json_of(r, f"POST {path}")
        url, order_id = session.get("checkout_url"), session.get("order_id")
        if not isinstance(url, str) or not isinstance(order_id, str):
            raise self.fail(f"POST {path}: no checkout_url / order_id, got keys {sorted(session)}")
        self.redact.add(url)
        if session.get("status") != "pending" or session.get("amount") != amount or session.get("currency") != currency:
            raise self.fail(f"POST {path}: expected a pending order of {amount} {currency}, got "
                            f"{session.get('status')} {session.get('amount')} {session.get('currency')}")
        self.ok(t, f"checkout session for store {store_id}: 201, order {order_id}, pending {amount} {currency}")

        t = time.monotonic()
        r = self.request("GET", url)
        self.expect(r, 200, "GET /checkout/<token> (checkout_url)", "text/html")
        self.ok(t, "checkout page opens from checkout_url: 200 text/html")

        t = time.monotonic()
        path = f"/api/internal/orders/{order_id}"
        r = self.internal("GET", path)
        self.expect(r, 200, f"GET {path} (signed)", "application/json")
        order = self.json_of(r, f"GET {path}")
        if order.get("status") != "pending" or order.get("amount") != amount:
            raise self.fail(f"GET {path}: expected pending {amount}, got {order.get('status')} {order.get('amount')}")
        self.ok(t, f"order from the internal API: 200, pending {amount} {currency}")

    def disconnect(self, store_id: str) -> None:
        t = time.monotonic()
        path = f"/api/internal/stores/{store_id}/stripe"
        r = self.internal("DELETE", path)
        self.expect(r, 200, f"DELETE {path} (signed)", "application/json")
        self.ok(t, "disconnected the smoke store again: 200")


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description="Smoke test a checkout.best deployment (the README's BMOS flow). "
                    "The internal secret comes from the INTERNAL_SECRET environment variable.")
    parser.add_argument("base_url", metavar="BASE_URL",
                        help="origin the API answers on, e.g. https://pay.example.com or http://127.0.0.1:9000")
    parser.add_argument("--return-url",
                        help="return URL for the connect link: https on a host in AllowedReturnHosts "
                             "(default for a local base: http://localhost:3000/admin/payments)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--connected-store", metavar="STORE_ID",
                       help="a store that has connected Stripe: also open a checkout session for it")
    group.add_argument("--connect-with-test-key", action="store_true",
                       help="connect the random store through the form with test-mode keys first "
                            "(STRIPE_TEST_PUBLISHABLE_KEY/STRIPE_TEST_SECRET_KEY, else made-up keys "
                            "that only the local Stripe emulator accepts), check out, then disconnect it")
    parser.add_argument("--amount", type=int, default=1250, help="checkout amount in minor units (default 1250)")
    parser.add_argument("--currency", default="eur", help="checkout currency (default eur)")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds per request (default 20; cold starts)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    secret = os.environ.get("INTERNAL_SECRET", "")
    if not secret:
        print("smoke.py: INTERNAL_SECRET is not set (the value of the stack's <stack>-bmos-auth secret)", file=sys.stderr)
        return 2
    base = args.base_url.strip().rstrip("/")
    parts = urllib.parse.urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path or parts.query:
        print(f"smoke.py: BASE_URL must be an origin like https://pay.example.com, got {args.base_url!r}", file=sys.stderr)
        return 2
    local = parts.hostname in LOCAL_HOSTS
    return_url = args.return_url or ("http://localhost:3000/admin/payments" if local else None)
    if not return_url:
        print("smoke.py: pass --return-url https://<a host in AllowedReturnHosts>/... "
              "(connect links only return to BMOS's hosts)", file=sys.stderr)
        return 2
    if args.connected_store:
        try:
            args.connected_store = str(uuid.UUID(args.connected_store))
        except ValueError:
            print(f"smoke.py: --connected-store must be a store id (a UUID), got {args.connected_store!r}", file=sys.stderr)
            return 2

    smoke = Smoke(base, secret, args.timeout)
    keys = None
    if args.connect_with_test_key:
        pk = os.environ.get("STRIPE_TEST_PUBLISHABLE_KEY", "")
        sk = os.environ.get("STRIPE_TEST_SECRET_KEY", "")
        if bool(pk) != bool(sk):
            print("smoke.py: set both STRIPE_TEST_PUBLISHABLE_KEY and STRIPE_TEST_SECRET_KEY, or neither", file=sys.stderr)
            return 2
        if pk and not (pk.startswith("pk_test_") and sk.startswith("sk_test_")):
            print("smoke.py: --connect-with-test-key takes test-mode keys only (pk_test_/sk_test_)", file=sys.stderr)
            return 2
        if not pk:
            made_up = secrets.token_hex(12)
            pk, sk = f"pk_test_{made_up}", f"sk_test_{made_up}"
        keys = (pk, sk)
        smoke.redact.add(sk)

    print(f"smoke test of {base}", flush=True)
    store_id = str(uuid.uuid4())
    connected_by_us = False
    try:
        smoke.public_status(store_id, connected=False)
        smoke.unauthenticated_refused(store_id)
        link = smoke.connect_link(store_id, return_url)
        form = smoke.connect_form(link)
        smoke.internal_status(store_id, connected=False)
        smoke.internal_status(store_id, connected=False, auth="secret")
        checkout_store = args.connected_store
        if keys:
            smoke.connect(link, form, store_id, *keys)
            connected_by_us = True
            smoke.internal_status(store_id, connected=True)
            smoke.public_status(store_id, connected=True)
            checkout_store = store_id
        if checkout_store:
            smoke.checkout(checkout_store, args.amount, args.currency.lower())
        if connected_by_us:
            connected_by_us = False
            smoke.disconnect(store_id)
            smoke.public_status(store_id, connected=False)
    except SmokeFailure as failure:
        print(f"FAIL {failure}", flush=True)
        if connected_by_us:
            try:
                smoke.disconnect(store_id)
            except SmokeFailure as cleanup:
                print(f"     (and disconnecting the smoke store {store_id} failed too: {cleanup})")
        print(f"smoke test FAILED after {smoke.steps} passing check(s)", flush=True)
        return 1
    skipped = "" if (args.connected_store or keys) else \
        " (no checkout: pass --connected-store ID or --connect-with-test-key)"
    print(f"smoke test passed: {smoke.steps} checks{skipped}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
