#!/usr/bin/env python3
"""Schemathesis against openapi.yaml on a running local stack, with real data.

    infra/schemathesis_run.py BASE_URL [--max-time SECONDS] [--seed N] [--report-dir DIR] [schemathesis options]

BASE_URL is the stack's CHECKOUT_BASE_URL; INTERNAL_SECRET must be the stack's
secret (both are in $STACK_DIR/service.env). `make test` runs the short form,
`make verify` a longer one (RELIABILITY.md, "Schemathesis").

Random input alone stops at the first 401, 403 or 404: a random store id is not
connected, a random checkout token is unknown, a random link signature is
wrong. So this first prepares real data through the public API, the way
infra/smoke.py does it (its Smoke class), and hands it to schemathesis through
environment variables that infra/schemathesis.toml reads:

  - store A: connected with test-mode keys (only the Stripe emulator takes
    them) and a webhook signing secret we chose, so the hooks
    (infra/schemathesis_hooks.py) can sign webhook deliveries for it; one
    checkout session for it (its token and order id). Only read, checked out
    and sent webhooks, so its secret stays the one we know.
  - store B: connected; a signed connect link for it and the CSRF tokens of
    its two forms. The merchant pages and `PUT .../webhook-secret` run
    against it (they replace its webhook secret at will).
  - store C: connected, for `DELETE .../stripe` (the first call disconnects
    it; every later one is a 404, which is right).

Exit status: schemathesis's (non-zero on any failure), or 1 if the set-up
failed. Never prints the internal secret, keys, tokens or signatures.
"""

from __future__ import annotations

import argparse
from collections import Counter
import os
import secrets
import subprocess
import sys
import time
import urllib.parse
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from smoke import FormParser, Smoke, SmokeFailure  # noqa: E402

# Fixed so a run can be repeated exactly; `make verify SEED=...` tries others.
DEFAULT_SEED = 20261207


def connect_through(smoke: Smoke, link: str, store_id: str, pk: str, sk: str) -> dict[str, str]:
    """Saves keys through the connect form of `link`: the query of the link of
    ours the save redirects with (it opens the success and webhook-secret pages)."""
    form = smoke.connect_form(link)
    fields = dict(form.inputs, publishable_key=pk, secret_key=sk, webhook_secret="")
    r = smoke.request("POST", urllib.parse.urljoin(link, form.action), data=fields,
                      headers={"Origin": smoke.base, "Referer": link})
    if r.status_code != 303:
        raise smoke.fail(f"POST /stripe/connect for store {store_id}: expected 303", r)
    location = urllib.parse.urlsplit(r.headers["location"])
    smoke.redact.add(location.query)
    return dict(urllib.parse.parse_qsl(location.query))


def connected_store(smoke: Smoke, return_url: str) -> tuple[str, str, str, dict[str, str]]:
    """A new store connected with made-up test keys (only the Stripe emulator
    takes them): (id, pk, sk, the query of the link of ours the save gave)."""
    store_id = str(uuid.uuid4())
    made_up = secrets.token_hex(12)
    pk, sk = f"pk_test_{made_up}", f"sk_test_{made_up}"
    smoke.redact.add(sk)
    ours = connect_through(smoke, long_link(smoke, store_id, return_url), store_id, pk, sk)
    return store_id, pk, sk, ours


LINKS_MADE = 0


def long_link(smoke: Smoke, store_id: str, return_url: str) -> str:
    """A connect link valid for about an hour (the longest allowed): it must
    outlive the run. A link is its store, return URL and expiry, so two asked
    for in the same second would be the same link (and used together): each
    gets five seconds less (more than the set-up's pauses)."""
    global LINKS_MADE
    LINKS_MADE += 1
    path = f"/api/internal/stores/{store_id}/connect-links"
    r = smoke.internal("POST", path, {"return_url": return_url, "expires_in": 3600 - 5 * LINKS_MADE}, auth="secret")
    smoke.expect(r, 200, f"POST {path}", "application/json")
    url = smoke.json_of(r, f"POST {path}")["url"]
    smoke.redact.add(url)
    return url


def form_csrf(smoke: Smoke, url: str, what: str) -> str:
    r = smoke.request("GET", url)
    smoke.expect(r, 200, what, "text/html")
    form = FormParser()
    form.feed(r.text)
    token = form.inputs.get("csrf_token")
    if not token:
        raise smoke.fail(f"{what}: no CSRF token in the form")
    smoke.redact.add(token)
    return token


def prepare(base: str, secret: str) -> dict[str, str]:
    smoke = Smoke(base, secret, timeout=30.0)
    return_url = "http://localhost:3000/admin/payments"
    env: dict[str, str] = {}

    # Store A: checkout, webhooks, status.
    store_a, _, _, _ = connected_store(smoke, return_url)
    whsec = "whsec_" + secrets.token_hex(16)
    smoke.redact.add(whsec)
    r = smoke.internal("PUT", f"/api/internal/stores/{store_a}/webhook-secret",
                       {"webhook_secret": whsec}, auth="secret")
    smoke.expect(r, 200, "PUT webhook-secret for store A", "application/json")
    r = smoke.internal("POST", "/api/internal/checkout-sessions", {
        "store_id": store_a, "currency": "eur",
        "line_items": [{"name": "Schemathesis item", "unit_amount": 1250, "quantity": 2}],
    }, auth="secret")
    smoke.expect(r, 201, "checkout session for store A", "application/json")
    session = smoke.json_of(r, "checkout session")
    token = urllib.parse.urlsplit(session["checkout_url"]).path.rsplit("/", 1)[-1]
    smoke.redact.add(token)
    env.update(ST_STORE_A=store_a, ST_WEBHOOK_SECRET=whsec, ST_TOKEN=token, ST_ORDER_ID=session["order_id"])

    # Store B: the merchant pages. Links work once (the first save through a
    # link consumes it), so each page that only shows gets a link no post
    # will consume: connect form GET and POST take two connect links; the
    # success page and webhook-secret form GET, and the webhook-secret POST,
    # take two links of ours (from two saves). All valid for an hour.
    store_b, pk_b, sk_b, ours_show = connected_store(smoke, return_url)
    time.sleep(1.1)  # links of ours expire an hour after the save: another second, another link
    ours_post = connect_through(smoke, long_link(smoke, store_b, return_url), store_b, pk_b, sk_b)
    show = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(long_link(smoke, store_b, return_url)).query))
    post_link = long_link(smoke, store_b, return_url)
    post = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(post_link).query))
    wh_page = f"{base}/stripe/webhook-secret?{urllib.parse.urlencode(ours_post)}"
    env.update(
        ST_STORE_B=store_b, ST_RETURN_URL=return_url, ST_ORIGIN=base, ST_PK_B=pk_b, ST_SK_B=sk_b,
        ST_LINK_SHOW_EXPIRES=show["expires"], ST_LINK_SHOW_SIGNATURE=show["signature"],
        ST_LINK_POST_EXPIRES=post["expires"], ST_LINK_POST_SIGNATURE=post["signature"],
        ST_OURS_SHOW_EXPIRES=ours_show["expires"], ST_OURS_SHOW_SIGNATURE=ours_show["signature"],
        ST_OURS_POST_EXPIRES=ours_post["expires"], ST_OURS_POST_SIGNATURE=ours_post["signature"],
        ST_CSRF_CONNECT=form_csrf(smoke, post_link, "GET /stripe/connect for store B"),
        ST_CSRF_WEBHOOK=form_csrf(smoke, wh_page, "GET /stripe/webhook-secret for store B"),
    )

    # Store C: disconnected by the first DELETE.
    env["ST_STORE_C"] = connected_store(smoke, return_url)[0]
    return env


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base_url")
    parser.add_argument("--max-time", type=int, default=90, help="time budget in seconds (default 90)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--report-dir", default=str(ROOT / "artifacts" / "schemathesis"))
    # Anything else goes to `schemathesis run` as is, e.g. `--include-operation-id X --phases coverage`.
    args, extra = parser.parse_known_args(argv)
    secret = os.environ.get("INTERNAL_SECRET", "")
    if not secret:
        print("schemathesis_run.py: INTERNAL_SECRET is not set (source $STACK_DIR/service.env)", file=sys.stderr)
        return 2
    base = args.base_url.rstrip("/")

    print(f"schemathesis: preparing data on {base}", flush=True)
    try:
        data = prepare(base, secret)
    except SmokeFailure as failure:
        print(f"schemathesis: set-up FAILED: {failure}", flush=True)
        return 1

    Path(args.report_dir).mkdir(parents=True, exist_ok=True)
    dropped_log = Path(args.report_dir) / "dropped.tsv"
    dropped_log.write_text("")
    env = {**os.environ, **data, "INTERNAL_SECRET": secret, "ST_DROPPED_LOG": str(dropped_log)}
    st = Path(sys.executable).parent / "schemathesis"
    cmd = [
        str(st), "--config-file", str(HERE / "schemathesis.toml"), "run", str(ROOT / "openapi.yaml"),
        # Every check but `unsupported_method`: it wants 405 for a method a
        # route does not list, and API Gateway (like the local router) answers
        # 404 before any function runs (RELIABILITY.md).
        "--url", base, "--checks", "all", "--exclude-checks", "unsupported_method", "--seed", str(args.seed), "--max-time", str(args.max_time),
        *extra, "--report", "junit,ndjson", "--report-dir", args.report_dir, "--no-color",
    ]
    print(f"schemathesis: {' '.join(cmd[1:])}", flush=True)
    rc = subprocess.run(cmd, env=env, cwd=ROOT).returncode
    counts = Counter(tuple(line.split("\t")) for line in dropped_log.read_text().splitlines() if line)
    print("schemathesis: failures dropped by infra/schemathesis_hooks.py (RELIABILITY.md says why):"
          + ("" if counts else " none"))
    for (reason, operation, kind), n in sorted(counts.items()):
        print(f"  {n:5d}  {operation}  {kind}: {reason}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
