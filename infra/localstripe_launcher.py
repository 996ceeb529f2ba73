"""Run localstripe (fake Stripe API + mock Stripe.js) on 127.0.0.1 only, in memory.

Why not the stock `localstripe` command: it binds every interface ('::') and,
on every write, pickles its whole store to the fixed file /tmp/localstripe.pickle
(and reloads it at start unless --from-scratch), so two stacks on one machine
would share and corrupt each other's state. Here we serve the same aiohttp app
(`localstripe.server.app`, which also serves /js.stripe.com/v3/) with the disk
dump and load turned into no-ops, without editing the installed package.

It also answers `GET /v1/account` (Stripe's "Retrieve account"), which
localstripe lacks and the connect form calls to learn whose account a key
acts on. localstripe keeps one store for every key (no isolation between
keys), so every key it accepts acts on one and the same account: the route
returns that one account, with Stripe's shape for the fields we read. Keys
localstripe refuses (`pk_`, `rk_`, garbage) get its 401 from the auth
middleware before this route runs.

And it lets a publishable key retrieve a PaymentIntent with the intent's
client secret, as Stripe documents ("Retrieve a PaymentIntent": the client
secret is required when using a publishable key) and as Stripe.js does; the
connect form proves a publishable key that way. localstripe's auth middleware
refuses every `pk_` key on GET. One account here, so any `pk_` key finds
every intent; a wrong client secret, or none, gets Stripe's 404.

Usage: python localstripe_launcher.py --port PORT
"""

import argparse
import logging
import re

from aiohttp import web

from localstripe import resources
from localstripe.errors import UserError
import localstripe.server


def disable_persistence():
    # Store.__setitem__/__delitem__ and server.save_store_middleware all call
    # store.dump_to_disk(); patching the class covers the one `store` instance.
    resources.Store.dump_to_disk = lambda self: None
    resources.Store.try_load_from_disk = lambda self: None


# One emulator, one account: see the module docstring.
EMULATOR_ACCOUNT = {
    "id": "acct_1LocalStripeEmu",
    "object": "account",
    "business_type": None,
    "charges_enabled": True,
    "country": "US",
    "default_currency": "usd",
    "details_submitted": True,
    "payouts_enabled": True,
    "type": "standard",
}


async def retrieve_account(request):
    return web.json_response(EMULATOR_ACCOUNT)


def add_account_route():
    localstripe.server.app.router.add_get("/v1/account", retrieve_account)


INTENT_PATH = re.compile(r"^/v1/payment_intents/(pi_\w+)$")


@web.middleware
async def publishable_key_retrieve(request, handler):
    match = INTENT_PATH.match(request.path)
    if not (
        request.method == "GET"
        and match
        and request.headers.get("Authorization", "").startswith("Bearer pk_")
    ):
        return await handler(request)
    intent = resources.store.get("payment_intent:" + match.group(1))
    secret = request.query.get("client_secret")
    if intent is None or secret is None or secret != intent.client_secret:
        raise UserError(
            404,
            "No such payment_intent: '%s'" % match.group(1),
            {"code": "resource_missing", "param": "intent"},
        )
    return localstripe.server.json_response(intent._export())


def add_publishable_key_retrieve():
    # After the error middleware (which turns UserError into Stripe's error
    # body), before the auth middleware (which refuses pk_ keys).
    localstripe.server.app.middlewares.insert(1, publishable_key_retrieve)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()

    disable_persistence()
    add_account_route()
    add_publishable_key_retrieve()

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    web.run_app(
        localstripe.server.app,
        host=args.host,
        port=args.port,
        access_log=logging.getLogger("aiohttp.access"),
        print=lambda msg: logging.info("%s", msg),
    )


if __name__ == "__main__":
    main()
