"""Isolation under a flood, against the local stack (127.0.0.1 only).

One phase measures webhook deliveries and BMOS calls alone (the baseline);
the next repeats them while threads flood the customers' routes with one
leaked checkout link (POST payment-intent in a loop, plus page loads).
Prints counts, status codes and latencies of both phases, and how many
PaymentIntents the flooded order caused in the Stripe emulator.

The local router does not enforce API Gateway's per-route throttles (the
template test infra/tests/test_budgets.py proves those); this run shows the
per-order cap and that a flood on one function does not stop the others
answering.

    set -a; source $STACK_DIR/env; source $STACK_DIR/service.env; set +a
    .local/venv/bin/python bench/flood.py --seconds 20 --flooders 6

Bounded: --seconds per phase (default 15, at most 120) and --flooders threads
(default 6, at most 32).
"""

import argparse
import collections
import json
import os
import re
import statistics
import threading
import time
import uuid
from urllib.parse import urlparse

import requests

BASE = os.environ["CHECKOUT_BASE_URL"].rstrip("/")
STRIPE = os.environ["STRIPE_API_BASE"].rstrip("/")
SECRET = os.environ["INTERNAL_SECRET"]
for url in (BASE, STRIPE):
    assert urlparse(url).hostname == "127.0.0.1", f"local stack only, not {url}"
INTERNAL = {"x-internal-secret": SECRET, "content-type": "application/json"}


def connected_store():
    store = str(uuid.uuid4())
    body = uuid.uuid4().hex[:24]
    link = requests.post(
        f"{BASE}/api/internal/stores/{store}/connect-links",
        headers=INTERNAL,
        data=json.dumps({"return_url": "http://localhost:3000/admin", "expires_in": 1800}),
        timeout=10,
    )
    link.raise_for_status()
    html = requests.get(link.json()["url"], timeout=10).text
    fields = dict(re.findall(r'name="([a-z_]+)" value="([^"]*)"', html))
    form = {k: v.replace("&#38;", "&").replace("&amp;", "&").replace("&#61;", "=").replace("&#47;", "/")
            for k, v in fields.items() if k in ("store_id", "return_url", "expires", "signature", "csrf_token")}
    form.update(publishable_key=f"pk_test_{body}", secret_key=f"sk_test_{body}")
    saved = requests.post(f"{BASE}/stripe/connect", data=form, headers={"origin": BASE},
                          allow_redirects=False, timeout=30)
    assert saved.status_code == 303, (saved.status_code, saved.text[:300])
    return store, f"sk_test_{body}"


def checkout(store):
    cart = {
        "store_id": store, "currency": "eur",
        "line_items": [{"name": "Blue mug", "unit_amount": 1250, "quantity": 2}],
        "success_url": "http://localhost:3000/thanks", "cancel_url": "http://localhost:3000/cart",
        "customer_email": "ann@example.com", "store_name": "Ann's Mugs",
    }
    made = requests.post(f"{BASE}/api/internal/checkout-sessions", headers=INTERNAL, data=json.dumps(cart), timeout=10)
    made.raise_for_status()
    session = made.json()
    return session["checkout_url"].rsplit("/", 1)[1], session["order_id"]


def intents_for(secret, order_id):
    count, after = 0, None
    while True:
        params = {"limit": 100, **({"starting_after": after} if after else {})}
        page = requests.get(f"{STRIPE}/v1/payment_intents", params=params,
                            headers={"authorization": f"Bearer {secret}"}, timeout=10).json()
        count += sum(1 for pi in page["data"] if pi.get("metadata", {}).get("order_id") == order_id)
        if not page.get("has_more") or not page["data"]:
            return count
        after = page["data"][-1]["id"]


class Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.latency = collections.defaultdict(list)
        self.codes = collections.defaultdict(collections.Counter)

    def call(self, name, method, url, **kw):
        start = time.perf_counter()
        try:
            status = requests.request(method, url, timeout=10, **kw).status_code
        except requests.RequestException as err:
            status = type(err).__name__
        elapsed = (time.perf_counter() - start) * 1000
        with self.lock:
            self.latency[name].append(elapsed)
            self.codes[name][status] += 1

    def rows(self, phase):
        out = []
        for name in sorted(self.latency):
            ms = sorted(self.latency[name])
            p95 = ms[max(0, round(0.95 * len(ms)) - 1)]
            codes = ", ".join(f"{k}: {v}" for k, v in sorted(self.codes[name].items(), key=str))
            out.append(f"| {phase} | {name} | {len(ms)} | {statistics.median(ms):.1f} | {p95:.1f} | {codes} |")
        return out


def measured(tally, stop, store):
    """Stripe's webhook deliveries (unsigned: answered 400 after the store
    lookup) and BMOS's status reads, one after another, as Stripe and BMOS
    would send them."""
    while not stop.is_set():
        tally.call("webhook POST /webhook/stripe/{store_id}", "POST", f"{BASE}/webhook/stripe/{store}",
                   data='{"id":"evt_flood","type":"payment_intent.succeeded"}',
                   headers={"stripe-signature": "t=1,v1=00", "content-type": "application/json"})
        tally.call("bmos GET /api/internal/stores/{id}/stripe-status", "GET",
                   f"{BASE}/api/internal/stores/{store}/stripe-status", headers=INTERNAL)


def flooder(tally, stop, token):
    while not stop.is_set():
        tally.call("flood POST /checkout/{token}/payment-intent", "POST", f"{BASE}/checkout/{token}/payment-intent",
                   data="{}", headers={"content-type": "application/json"})
        tally.call("flood GET /checkout/{token}", "GET", f"{BASE}/checkout/{token}")


def phase(seconds, store, token=None, flooders=0):
    tally, stop = Tally(), threading.Event()
    threads = [threading.Thread(target=measured, args=(tally, stop, store))]
    threads += [threading.Thread(target=flooder, args=(tally, stop, token)) for _ in range(flooders)]
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    return tally


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--flooders", type=int, default=6)
    args = parser.parse_args()
    seconds, flooders = min(max(args.seconds, 1), 120), min(max(args.flooders, 1), 32)
    store, secret = connected_store()
    token, order_id = checkout(store)
    baseline = phase(seconds, store)
    flooded = phase(seconds, store, token, flooders)
    print(f"{seconds} s per phase, {flooders} flooding threads, one order")
    print("| phase | route | requests | median ms | p95 ms | statuses |")
    print("|---|---|---|---|---|---|")
    print("\n".join(baseline.rows("baseline") + flooded.rows("flood")))
    print(f"PaymentIntents the flooded order caused in the emulator: {intents_for(secret, order_id)}")


if __name__ == "__main__":
    main()
