"""What the secret scans look for: the shapes of the secrets we must never
show, and the secrets the test run left in its table, recovered the way only
the service can recover them (KMS, with the store's encryption context), so
the scans can look for the exact values: a data key has no pattern to search
for, and a checkout token is only recognisable by its hash.

Used by test_logs.py and test_responses.py, which run at the end of the test
command while the stack is still up."""

import base64
import functools
import hashlib
import os
import re
from dataclasses import dataclass, field

import boto3
from cryptography.fernet import Fernet

# A merchant's Stripe secret or restricted key, and a webhook signing secret.
STRIPE_KEY = re.compile(r"\b[sr]k_(?:test|live)_[A-Za-z0-9]{4,}")
WEBHOOK_SECRET = re.compile(r"\bwhsec_[A-Za-z0-9]{4,}")
# A PaymentIntent's (or SetupIntent's) client secret.
CLIENT_SECRET = re.compile(r"\b(?:pi|seti)_[A-Za-z0-9]+_secret_[A-Za-z0-9]+")

# (wrapped data key, Fernet token, encryption context purpose) per kind of
# sealed secret, as shared/src/vault/ and the store write them.
SEALED = [
    ("secret_key_wrapped", "secret_key_token", "stripe_secret_key"),
    ("webhook_secret_wrapped", "webhook_secret_token", "stripe_webhook_secret"),
    ("token_wrapped_key", "token_sealed", "checkout_token"),
]
# Runs of base64 or hex characters at least as long as a token or a key; every
# window of such a run is a candidate (a padded base64 form contains the
# unpadded one, so the unpadded length is enough).
B64_RUN = re.compile(r"[A-Za-z0-9+/_-]{43,}")
HEX_RUN = re.compile(r"[0-9a-fA-F]{64,}")


def windows(text, run, width):
    for match in run.finditer(text):
        value = match.group()
        for start in range(len(value) - width + 1):
            yield value[start : start + width]


def encodings(raw):
    """The text forms in which a 32-byte key could be written out (base64
    unpadded, as every padded form contains it; hex in either case)."""
    return {
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        base64.b64encode(raw).decode().rstrip("="),
        raw.hex(),
        raw.hex().upper(),
    }


@dataclass
class StackSecrets:
    # Every text form of every data key: none may appear anywhere.
    data_keys: set = field(default_factory=set)
    # Plaintexts opened from the table (Stripe keys, webhook secrets, checkout
    # tokens): the scans' patterns must recognise each of them.
    opened: set = field(default_factory=set)
    # SHA-256 (hex) of every checkout token the table knows.
    token_hashes: set = field(default_factory=set)
    # Which order each checkout token (by hash) and each PaymentIntent is for.
    session_orders: dict = field(default_factory=dict)
    intent_orders: dict = field(default_factory=dict)
    sealed_items: int = 0

    def order_of_token(self, token):
        return self.session_orders.get(hashlib.sha256(token.encode()).hexdigest())

    def checkout_tokens_in(self, text):
        """The real checkout tokens in `text`, recognised by their hashes."""
        return {
            w for w in windows(text, B64_RUN, 43) if hashlib.sha256(w.encode()).hexdigest() in self.token_hashes
        }

    def holds_a_data_key(self, text):
        return any(w in self.data_keys for w in windows(text, B64_RUN, 43)) or any(
            w in self.data_keys for w in windows(text, HEX_RUN, 64)
        )


def items(table):
    client = boto3.client("dynamodb")
    for page in client.get_paginator("scan").paginate(TableName=table):
        yield from page["Items"]


@functools.cache
def load():
    """Read once per test session: both scans use the same table."""
    table = os.environ["TABLE_NAME"]
    kms = boto3.client("kms")
    secrets = StackSecrets()
    for item in items(table):
        pk = item["pk"]["S"]
        order = item.get("order_id", {}).get("S")
        if pk.startswith("SESSION#"):
            secrets.token_hashes.add(pk.removeprefix("SESSION#"))
            secrets.session_orders[pk.removeprefix("SESSION#")] = order
        elif pk.startswith("PI#"):
            secrets.intent_orders[pk.removeprefix("PI#")] = order
        for wrapped_name, token_name, purpose in SEALED:
            if wrapped_name not in item or "store_id" not in item:
                continue
            context = {"store_id": item["store_id"]["S"], "purpose": purpose}
            data_key = kms.decrypt(CiphertextBlob=item[wrapped_name]["B"], EncryptionContext=context)["Plaintext"]
            secrets.data_keys |= encodings(data_key)
            secrets.sealed_items += 1
            token = item.get(token_name, {}).get("S")
            if token:
                fernet = Fernet(base64.urlsafe_b64encode(data_key))
                secrets.opened.add(fernet.decrypt(token.encode()).decode())
    return secrets
