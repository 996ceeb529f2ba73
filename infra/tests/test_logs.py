"""Runs last in the test command: no log line written during the suite, by
the functions or the emulators, contains a Stripe secret, a webhook secret,
a bearer token, a checkout token, a data key or the internal secret, and the functions
do not log a client secret or a connect link's signature; the functions' own
lines carry the Lambda request id, and their business metrics are there."""

import json
import os
import re
from pathlib import Path

import pytest
import stack_secrets

STACK_DIR = Path(os.environ.get("STACK_DIR", ""))
ROOT = Path(__file__).resolve().parents[2]
SECRET_PATTERNS = [
    stack_secrets.STRIPE_KEY,
    stack_secrets.WEBHOOK_SECRET,
    re.compile(r"Bearer\s+\S+"),
    # A checkout token (43 URL-safe characters) is a customer's only credential.
    re.compile(r"/checkout/[A-Za-z0-9_-]{20,}"),
]
# Not ours to log, though Stripe's side (the emulator's access log) sees them:
# a PaymentIntent's client secret, which with the publishable key reads and
# confirms the payment, and a connect link's signature, which with its
# fields is the link. Scanned in the functions' log only.
SERVICE_PATTERNS = [
    stack_secrets.CLIENT_SECRET,
    re.compile(r"signature[\"':= ]+[0-9a-f]{64}\b"),
]


@pytest.fixture(scope="module")
def logs():
    files = sorted(STACK_DIR.glob("*.log"))
    if not files:
        pytest.fail(f"no logs in {STACK_DIR!r}: run through infra/test.sh")
    return {f.name: f.read_text(errors="replace") for f in files}


def test_the_suite_really_submitted_keys(logs):
    # Guards the scan below from passing on an empty or wrong log.
    assert "stripe keys saved" in logs.get("service.log", ""), "service log has no saved-keys line"


def test_no_secret_in_any_log_line(logs):
    internal = os.environ.get("INTERNAL_SECRET", "")
    assert len(internal) >= 32
    for name, text in logs.items():
        for number, line in enumerate(text.splitlines(), 1):
            patterns = SECRET_PATTERNS + (SERVICE_PATTERNS if name == "service.log" else [])
            for pattern in patterns:
                assert not pattern.search(line), f"{name}:{number}: {pattern.pattern} in {line[:200]}"
            assert internal not in line, f"{name}:{number}: the internal secret"


def test_no_data_key_or_checkout_token_in_any_log(logs):
    # Exact values from the table (a data key has no pattern; a checkout
    # token is known by its hash, wherever and however it is written).
    secrets = stack_secrets.load()
    assert secrets.data_keys and secrets.token_hashes, "the table holds no sealed secret or session"
    for name, text in logs.items():
        assert not secrets.holds_a_data_key(text), f"{name}: a data key"
        tokens = secrets.checkout_tokens_in(text)
        assert not tokens, f"{name}: {len(tokens)} checkout tokens"


def test_the_patterns_catch_what_we_fear():
    for leaked in [
        "key=sk_live_51HqLyj",
        "rk_test_abcd1234 rejected",
        '"whsec_abcdEFGH"',
        "authorization: Bearer sk",
        '"path":"/checkout/kq3n0VQ3aQ2xWv1mH8yJbN4cT5rL6pE7sD9fG0hK1jZ/complete"',
        '"client_secret":"pi_3MtwBwLkdIwHu7ix28a3tqPa_secret_YrKJUKribcBjcG8HVhfZluoGH"',
        "query=store_id=x&expires=1&signature=" + "ab" * 32,
        '"signature":"' + "0f" * 32 + '"',
    ]:
        assert any(p.search(leaked) for p in SECRET_PATTERNS + SERVICE_PATTERNS), leaked
    for harmless in [
        "pk_test_51HqLyj",
        "key_kind=secret",
        "stripe_secret_key",
        '"route":"GET /checkout/{token}"',
        "payment_intent=pi_3MtwBwLkdIwHu7ix28a3tqPa",
        "invalid_signature",
        "signature=redacted",
    ]:
        assert not any(p.search(harmless) for p in SECRET_PATTERNS + SERVICE_PATTERNS), harmless


def function_lines(logs):
    """The JSON lines our functions wrote (cargo lambda's own lines are not JSON)."""
    for line in logs.get("service.log", "").splitlines():
        if line.startswith("{"):
            try:
                yield json.loads(line)
            except ValueError:
                continue


def test_every_request_line_names_its_route_and_request_id(logs):
    requests = [l for l in function_lines(logs) if l.get("fields", {}).get("message") == "request"]
    assert len(requests) > 100, f"only {len(requests)} request lines: is this the suite's log?"
    for line in requests:
        assert "path" not in line["fields"], line
        assert re.fullmatch(r"[A-Z]+ /\S*", line["fields"]["route"]), line
        assert line.get("span", {}).get("requestId"), line
    routes = {l["fields"]["route"] for l in requests}
    assert "GET /checkout/{token}" in routes, sorted(routes)


def test_every_line_logged_during_an_invocation_carries_the_request_id(logs):
    ours = {"shared"} | {d.name.replace("-", "_") for d in (ROOT / "functions").iterdir()}
    lines = [l for l in function_lines(logs) if l.get("target", "").split("::")[0] in ours]
    assert len(lines) > 100, len(lines)
    # Logged before the first invocation (the cold start) has no request to name.
    outside = [l for l in lines if not l.get("span", {}).get("requestId") and "cold start" not in l["fields"].get("message", "")]
    assert not outside, outside[:3]


def metric_lines(logs):
    for line in function_lines(logs):
        if "_aws" in line:
            yield line


def test_business_metrics_are_written_as_embedded_metric_format(logs):
    seen = set()
    for line in metric_lines(logs):
        directive = line["_aws"]["CloudWatchMetrics"][0]
        assert directive["Namespace"] == "CheckoutBest", directive
        for metric in directive["Metrics"]:
            assert isinstance(line[metric["Name"]], int), line
            dims = tuple(line[d] for d in directive["Dimensions"][0])
            seen.add((metric["Name"],) + dims)
    for expected in [
        ("OrdersPaid", "webhook"),
        ("OrdersPaid", "return"),
        ("WebhookDeliveries", "verified"),
        ("WebhookDeliveries", "refused"),
    ]:
        assert expected in seen, f"{expected} never written; saw {sorted(seen)}"
