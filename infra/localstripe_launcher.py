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

Usage: python localstripe_launcher.py --port PORT
"""

import argparse
import logging

from aiohttp import web

from localstripe import resources
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()

    disable_persistence()
    add_account_route()

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
