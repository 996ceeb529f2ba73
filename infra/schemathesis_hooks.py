"""Schemathesis hooks, loaded through infra/schemathesis.toml. Each one lets
generated requests reach further than random data would, or drops exactly one
kind of failure that is not our functions' (RELIABILITY.md, "Schemathesis",
says why for each). The ${ST_*} values come from infra/schemathesis_run.py.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import time
import urllib.parse
from pathlib import Path

import yaml

import schemathesis

ROOT = Path(__file__).resolve().parent.parent

WEBHOOK_OPERATIONS = ("receiveStoreStripeWebhook", "receiveStripeWebhook")


def _operation_id(case_or_operation) -> str | None:
    operation = getattr(case_or_operation, "operation", case_or_operation)
    return operation.definition.raw.get("operationId")


# --- credentials: BMOS's secret, and webhooks signed as Stripe signs them ----

INTERNAL_OPERATIONS = (
    "getInternalStatus", "createConnectLink", "createCheckoutSession", "getOrder",
    "putWebhookSecret", "disconnectStripe",
)


# No caching: the value depends on the operation.
@schemathesis.auth(refresh_interval=None).apply_to(operation_id=[*INTERNAL_OPERATIONS, *WEBHOOK_OPERATIONS])
class Credentials:
    """One provider for both schemes we can satisfy (with `[auth.openapi]` in
    the config as well, schemathesis would not call a provider from hooks).

    BMOS's internal API gets the plain `X-Internal-Secret` header: signed
    POSTs work once each, so schemathesis could not repeat them.

    A random `Stripe-Signature` never verifies, so every generated event would
    stop at 400 `invalid_signature`. Webhook deliveries are signed with store
    A's webhook secret the way Stripe does (`t=<now>,v1=<HMAC-SHA256(secret,
    "<t>.<raw body>")>`) over the bytes schemathesis sends (`requests`'
    `json=` is `json.dumps(..., allow_nan=False)`).

    Either way it is explicit auth to schemathesis, so `ignored_auth` still
    sends each request without it and with a wrong value and checks both are
    refused."""

    def get(self, case, ctx):
        if _operation_id(case) in WEBHOOK_OPERATIONS:
            return os.environ["ST_WEBHOOK_SECRET"]
        return os.environ["INTERNAL_SECRET"]

    def set(self, case, data, ctx):
        if _operation_id(case) not in WEBHOOK_OPERATIONS:
            case.headers = {**(case.headers or {}), "X-Internal-Secret": data}
            return
        if isinstance(case.body, (bytes, bytearray)):
            body = bytes(case.body)
        else:
            try:
                body = json.dumps(case.body, allow_nan=False).encode()
            except (TypeError, ValueError):
                return  # not JSON: goes out unsigned, refused as such
        ts = str(int(time.time()))
        mac = hmac.new(data.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
        case.headers = {**(case.headers or {}), "Stripe-Signature": f"t={ts},v1={mac}"}


# --- bodies: real data in, and a return URL on an allowed host -------------

# Body fields that take real data (env vars from infra/schemathesis_run.py).
# Set here rather than as `body.*` parameters in the config: schemathesis
# re-checks a case against the schema after this hook, so an edited case is
# judged as what was sent (a `body.*` parameter turned a generated `null`
# body into a valid object that was still judged as invalid).
BODY_FIELDS = {
    "createCheckoutSession": {"store_id": "ST_STORE_A"},
    "submitConnectForm": {
        "store_id": "ST_STORE_B", "return_url": "ST_RETURN_URL", "expires": "ST_LINK_POST_EXPIRES",
        "signature": "ST_LINK_POST_SIGNATURE", "csrf_token": "ST_CSRF_CONNECT",
        "publishable_key": "ST_PK_B", "secret_key": "ST_SK_B",
    },
    "submitWebhookSecretForm": {
        "store_id": "ST_STORE_B", "return_url": "ST_RETURN_URL", "expires": "ST_OURS_POST_EXPIRES",
        "signature": "ST_OURS_POST_SIGNATURE", "csrf_token": "ST_CSRF_WEBHOOK",
    },
}


@schemathesis.hook
def before_call(context, case, kwargs):
    """Fields present in a generated body get the real values (a field left
    out, or a body that is not an object, stays as generated). For connect
    links, a generated https return URL keeps its port, path, query and
    fragment and gets the local stack's allowed host: the schema can say a
    return URL is https without credentials, not which hosts a deployment
    allows (AllowedReturnHosts is configuration)."""
    operation = _operation_id(case)
    if not isinstance(case.body, dict):
        return
    fields = BODY_FIELDS.get(operation)
    if fields:
        case.body = {**case.body, **{k: os.environ[v] for k, v in fields.items() if k in case.body}}
    if operation == "createConnectLink":
        _allowed_return_host(case)


def _allowed_return_host(case):
    raw = case.body.get("return_url")
    if not isinstance(raw, str):
        return
    try:
        parts = urllib.parse.urlsplit(raw)
        port = parts.port
    except ValueError:
        return
    if parts.scheme != "https" or not parts.hostname or "@" in parts.netloc:
        return
    netloc = "localhost" + (f":{port}" if port is not None else "")
    case.body = {**case.body, "return_url": urllib.parse.urlunsplit(parts._replace(netloc=netloc))}


# --- failures that are not our functions' -------------------------------------

# What `cargo lambda watch` (the local router) answers, without calling any
# function, for a request body that is not UTF-8.
ROUTER_500 = b'{"type":"https://httpstatuses.com/500","status":500,"title":"Internal Server Error"}'


MAX_AMOUNT = 99_999_999


def _error(response) -> tuple[str, str] | None:
    try:
        error = json.loads(response.content)["error"]
        return error["code"], error["message"]
    except (ValueError, KeyError, TypeError):
        return None


def _cart_total(body) -> float:
    try:
        return sum(item["unit_amount"] * item["quantity"] for item in body["line_items"])
    except (KeyError, TypeError):
        return 0


def _only_line_minimum_violated(message: str) -> bool:
    violations = re.findall(r"violates `[^`]+` at (\S+)", message)
    return bool(violations) and all(v.startswith("/allOf/") for v in violations)


def _minimum_charge(body) -> float:
    """The per-line minimum openapi.yaml gives the cart's currency (its allOf)."""
    spec = yaml.safe_load((ROOT / "openapi.yaml").read_text())
    request = spec["components"]["schemas"]["CheckoutSessionRequest"]
    currency = body.get("currency") if isinstance(body, dict) else None
    for rule in request.get("allOf", []):
        if currency in rule["if"]["properties"]["currency"]["enum"]:
            return rule["then"]["properties"]["line_items"]["items"]["properties"]["unit_amount"]["minimum"]
    return float("inf")


def _modes_differ(body) -> bool:
    try:
        pk, sk = body["publishable_key"].strip(), body["secret_key"].strip()
    except (KeyError, TypeError, AttributeError):
        return False
    pk_mode = "test" if pk.startswith("pk_test_") else "live" if pk.startswith("pk_live_") else None
    sk_mode = "test" if sk[3:].startswith("test_") else "live" if sk[3:].startswith("live_") else None
    return None not in (pk_mode, sk_mode) and pk_mode != sk_mode


def _is_utf8(value) -> bool:
    """Whether `value` goes on the wire as UTF-8: `requests` sends str header
    values as latin-1, and bytes as they are."""
    if value is None:
        return True
    if isinstance(value, str):
        try:
            value = value.encode("latin-1")
        except UnicodeEncodeError:
            return True  # what latin-1 cannot hold goes out as UTF-8
    try:
        bytes(value).decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def _request_is_utf8(request, case) -> bool:
    """The request as sent, with header values from the case: schemathesis
    masks secret-looking headers (`Idempotency-Key`) in the request it keeps."""
    body = request.body
    body_ok = body is None or isinstance(body, str) or _is_utf8(body)
    headers = [*request.headers.values(), *(case.headers or {}).values()]
    return body_ok and all(_is_utf8(v) for v in headers if isinstance(v, (str, bytes)))


def _dropped(reason: str, case, failure) -> bool:
    """Records why a failure was dropped (infra/schemathesis_run.py prints the
    counts after the run, so every exclusion shows in every run's output)."""
    path = os.environ.get("ST_DROPPED_LOG")
    if path:
        with open(path, "a") as log:
            log.write(f"{reason}\t{_operation_id(case)}\t{type(failure).__name__}\n")
    return False


@schemathesis.hook
def filter_failure(context, failure, case, response):
    """False drops the failure. Five exact cases, nothing broader:

    1. The local router's own 500 (this exact body, text/plain) for a request
       whose body or a header value is not UTF-8 (`not_a_server_error`, and the
       content type / status code failures of the same response): no function
       ran. API Gateway hands such bytes to the function; the functions' answer
       to them (400) is tested in Rust.
    2. `positive_data_acceptance` on `createCheckoutSession` when the answer is
       422 "line_items: the total must not exceed 99999999" and the cart's total
       (the sum of unit_amount × quantity) does exceed it: a bound on a sum,
       which JSON Schema cannot state (each line's own bounds are in the schema).
    2b. The mirror image on the same operation, `negative_data_rejection`: the
       schema holds each line to the currency's minimum charge (the `allOf` of
       if/then), the server the total. A cart with a line under it but a total
       over it is accepted (201). Dropped only when every violation reported is
       under that `allOf` and the total sent is at least the minimum the schema
       gives for the currency.
    3. `positive_data_acceptance` on `submitConnectForm` when the answer is 422
       and the publishable and secret keys sent are of different modes (test and
       live): a relation between two fields. openapi.yaml states it in words; as
       JSON Schema (if/then on patterns) it leaves schemathesis unable to
       generate bodies (its filter_too_much health check).
    4. `ignored_auth` on the webhook operations when the unsigned or wrongly
       signed request was refused with 400: the signature IS enforced; Stripe's
       convention (and openapi.yaml) is 400 `invalid_signature`, not 401/403. A
       2xx for such a request is still a failure.
    """
    request = getattr(response, "request", None)
    if (
        response.status_code == 500
        and response.content == ROUTER_500
        and response.headers.get("content-type", [""])[0].startswith("text/plain")
        and request is not None
        and not _request_is_utf8(request, case)
    ):
        return _dropped("local router 500 for bytes that are not UTF-8", case, failure)
    if (
        _operation_id(case) == "createCheckoutSession"
        and type(failure).__name__ == "RejectedPositiveData"
        and response.status_code == 422
        and _error(response) == ("invalid_field", f"line_items: the total must not exceed {MAX_AMOUNT}")
        and _cart_total(case.body) > MAX_AMOUNT
    ):
        return _dropped("cart total over 99,999,999 (a bound on a sum)", case, failure)
    if (
        _operation_id(case) == "createCheckoutSession"
        and type(failure).__name__ == "AcceptedNegativeData"
        and response.status_code == 201
        and _only_line_minimum_violated(failure.message)
        and _cart_total(case.body) >= _minimum_charge(case.body)
    ):
        return _dropped("a line under the minimum charge, the total over it (per line vs. total)", case, failure)
    if (
        _operation_id(case) == "submitConnectForm"
        and type(failure).__name__ == "RejectedPositiveData"
        and response.status_code == 422
        and _modes_differ(case.body)
    ):
        return _dropped("keys of different modes (a relation between two fields)", case, failure)
    if (
        _operation_id(case) in WEBHOOK_OPERATIONS
        and type(failure).__name__ == "IgnoredAuth"
        and "got `400 Bad Request`" in failure.message
    ):
        return _dropped("webhook signature enforced with 400, not 401/403", case, failure)
    return True
