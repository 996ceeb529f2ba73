"""Run localstripe (fake Stripe API + mock Stripe.js) on 127.0.0.1 only, in memory.

Why not the stock `localstripe` command: it binds every interface ('::') and,
on every write, pickles its whole store to the fixed file /tmp/localstripe.pickle
(and reloads it at start unless --from-scratch), so two stacks on one machine
would share and corrupt each other's state. Here we serve the same aiohttp app
(`localstripe.server.app`, which also serves /js.stripe.com/v3/) with the disk
dump and load turned into no-ops, without editing the installed package.

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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()

    disable_persistence()

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
