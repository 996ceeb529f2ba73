"""Runs last in the test command, with test_logs.py: no page and no API response
the functions gave during the whole suite hands out a secret it should not
(issue 15, item 6). The answers come from infra/recording_proxy.py, which stood
between every HTTP client of the run (system tests, browser, smoke test,
schemathesis) and the functions, and from the in-process fault run
(tests/system/tests/injected_faults.rs), in $STACK_DIR/responses/*.jsonl.

Two rules:

- Never, in any status line's headers or body: a Stripe secret or restricted
  key, a webhook signing secret, the internal secret, or any data key of the
  table (recovered through KMS, in every text form; stack_secrets.py).
- A checkout token, a PaymentIntent client secret, or a link signature or
  CSRF token (64 hex digits) only goes to someone who already holds it (it is
  in the request's target or body) or comes from the one route whose job is
  to hand it out, in a successful answer: checkout tokens from BMOS's
  checkout-sessions call, client secrets from the payment-intent call of the
  checkout the token opens, signatures from BMOS's connect-links call and the
  connect pages that sign the next step (the form's CSRF token, the success
  page's webhook-secret link).
"""

import json
import os
import re
from pathlib import Path
from urllib.parse import unquote_plus, urlsplit

import pytest
import stack_secrets

STACK_DIR = Path(os.environ.get("STACK_DIR", ""))

NEVER = [
    ("a Stripe key", stack_secrets.STRIPE_KEY),
    ("a webhook secret", stack_secrets.WEBHOOK_SECRET),
]
SIGNATURE = re.compile(r"(?<![0-9a-fA-F])[0-9a-f]{64}(?![0-9a-fA-F])")

# (method, path) of the routes that hand each kind out.
ISSUERS = {
    "checkout token": [("POST", r"/api/internal/checkout-sessions")],
    "client secret": [("POST", r"/checkout/[^/]+/payment-intent")],
    "signature": [
        ("POST", r"/api/internal/stores/[^/]+/connect-links"),
        # The key form's CSRF token; after a save, the 303 to the success page.
        ("GET", r"/stripe/connect"),
        ("POST", r"/stripe/connect"),
        # The success page's link to the webhook-secret form.
        ("GET", r"/stripe/success/[^/]+"),
        # The webhook-secret form's CSRF token.
        ("GET", r"/stripe/webhook-secret"),
    ],
}


def load_records():
    files = sorted((STACK_DIR / "responses").glob("*.jsonl"))
    records = []
    for f in files:
        for line in f.read_text(encoding="utf-8").splitlines():
            records.append(dict(json.loads(line), source=f.name))
    return records


@pytest.fixture(scope="module")
def records():
    found = load_records()
    if not found:
        pytest.fail(f"no recorded responses in {STACK_DIR / 'responses'!r}: run through infra/test.sh")
    return found


@pytest.fixture(scope="module")
def secrets():
    return stack_secrets.load()


def answer_text(record):
    headers = "\n".join(f"{name}: {value}" for name, value in record["headers"])
    return headers + "\n\n" + record["body"]


def held(record):
    """What the caller sent: the target and body, decoded as a form would be."""
    sent = record["target"] + "\n" + record["request_body"]
    return sent + "\n" + unquote_plus(sent)


def issues(record, kind):
    path = urlsplit(record["target"]).path
    return record["status"] < 400 and any(
        record["method"] == method and re.fullmatch(route, path) for method, route in ISSUERS[kind]
    )


def found_in(text, secrets):
    """(kind, value) of each token, client secret and signature in `text`."""
    yield from (("checkout token", t) for t in secrets.checkout_tokens_in(text))
    yield from (("client secret", c) for c in stack_secrets.CLIENT_SECRET.findall(text))
    yield from (("signature", s) for s in SIGNATURE.findall(text))


def leaks(record, secrets, internal_secret):
    """Why this answer must not have been given, if it must not."""
    text = answer_text(record)
    where = f"{record['source']}: {record['method']} {urlsplit(record['target']).path} -> {record['status']}"
    for name, pattern in NEVER:
        if pattern.search(text):
            yield f"{where}: {name}"
    if internal_secret and internal_secret in text:
        yield f"{where}: the internal secret"
    if secrets.holds_a_data_key(text):
        yield f"{where}: a data key"
    sent = held(record)
    for kind, value in found_in(text, secrets):
        if value not in sent and not issues(record, kind):
            yield f"{where}: a {kind} the caller did not hold ({value[:6]}...)"
        elif kind == "client secret" and value not in sent and not for_this_checkout(record, value, secrets):
            yield f"{where}: the client secret of another checkout's PaymentIntent"


def for_this_checkout(record, client_secret, secrets):
    """True when the intent is linked to the order the path's token opens."""
    token = urlsplit(record["target"]).path.split("/")[2]
    order = secrets.order_of_token(token)
    intent = client_secret.split("_secret_")[0]
    return order is not None and secrets.intent_orders.get(intent) == order


def test_the_run_recorded_every_kind_of_client_and_answer(records):
    # Guards the scans below from passing on an empty or partial record.
    assert len(records) > 1000, len(records)
    sources = {r["source"] for r in records}
    assert {"http.jsonl", "in-process-faults.jsonl"} <= sources, sources
    statuses = {r["status"] for r in records}
    assert {200, 201, 303, 400, 401, 404, 422} <= statuses, sorted(statuses)
    paths = {(r["method"], urlsplit(r["target"]).path.split("/")[1]) for r in records}
    for expected in [("GET", "checkout"), ("POST", "checkout"), ("GET", "stripe"), ("POST", "stripe"), ("POST", "api"), ("POST", "webhook")]:
        assert expected in paths, sorted(paths)


def test_the_table_gave_up_its_secrets_for_the_scan(secrets):
    assert secrets.sealed_items > 10 and secrets.data_keys, secrets.sealed_items
    kinds = {s.split("_")[0] for s in secrets.opened}
    assert {"sk", "whsec"} <= kinds, kinds
    # Every Stripe secret the suite stored has a shape the scans recognise.
    for opened in secrets.opened:
        if opened.startswith(("sk_", "rk_", "whsec_")):
            assert any(p.search(opened) for _, p in NEVER), opened[:8]
    tokens = [s for s in secrets.opened if len(s) == 43]
    assert tokens and all(secrets.checkout_tokens_in(t) == {t} for t in tokens)


def test_each_kind_was_seen_where_it_is_handed_out(records, secrets):
    # The detectors find real values in real answers: a token in a session
    # answer, a client secret in an intent answer, a signature in a link.
    seen = set()
    for record in records:
        for kind, _ in found_in(answer_text(record), secrets):
            if issues(record, kind):
                seen.add(kind)
    assert seen == set(ISSUERS), seen


def test_no_answer_hands_out_a_secret(records, secrets):
    internal = os.environ.get("INTERNAL_SECRET", "")
    assert len(internal) >= 32
    found = [leak for record in records for leak in leaks(record, secrets, internal)]
    assert not found, f"{len(found)} leaks, first: {found[:10]}"


def test_the_rules_catch_what_we_fear(secrets):
    tokens = sorted(s for s in secrets.opened if len(s) == 43 and secrets.order_of_token(s))
    intent, order = next(
        (i, o) for i, o in sorted(secrets.intent_orders.items()) if any(secrets.order_of_token(t) == o for t in tokens)
    )
    token = next(t for t in tokens if secrets.order_of_token(t) == order)
    other_token = next(t for t in tokens if secrets.order_of_token(t) != order)
    data_key = next(k for k in secrets.data_keys if len(k) == 64)
    signature = "ab" * 32

    def record(method, target, status, body, request_body=""):
        return {"source": "planted", "method": method, "target": target, "status": status,
                "headers": [["Content-Type", "text/html"]], "body": body, "request_body": request_body}

    leaking = [
        record("GET", "/stripe/status/s", 200, '{"key": "sk_live_51HqLyjAbcd"}'),
        record("POST", "/stripe/connect", 422, "whsec_abcdEFGH1234 was refused"),
        record("GET", "/stripe/status/s", 200, f"<a href='/checkout/{token}'>pay</a>"),
        record("POST", "/api/internal/checkout-sessions", 409, f'{{"checkout_url":"/checkout/{token}"}}'),
        record("GET", "/checkout/other", 404, '"pi_3Mtw_secret_YrKJ"'),
        record("GET", "/api/internal/stores/s/stripe-status", 200, f"signature={signature}"),
        record("GET", "/stripe/status/s", 500, f"debug: {data_key}"),
        # A real intent's secret, answered to another checkout's token.
        record("POST", f"/checkout/{other_token}/payment-intent", 200, f'{{"client_secret":"{intent}_secret_Yr"}}'),
    ]
    for planted in leaking:
        assert list(leaks(planted, secrets, "x" * 32)), planted
    harmless = [
        record("GET", f"/checkout/{token}", 200, f"<form action='/checkout/{token}/payment-intent'>"),
        record("POST", "/api/internal/checkout-sessions", 201, f'{{"checkout_url":"/checkout/{token}"}}'),
        record("POST", f"/checkout/{token}/payment-intent", 200, f'{{"client_secret":"{intent}_secret_Yr"}}'),
        record("POST", "/stripe/connect", 422, f"value='{signature}'", request_body=f"signature={signature}"),
        record("GET", "/stripe/status/s", 200, '{"publishable_key":"pk_test_51HqLyj"}'),
    ]
    for planted in harmless:
        assert not list(leaks(planted, secrets, "x" * 32)), planted
