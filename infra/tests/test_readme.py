"""The README's BMOS examples run as written against the local stack."""

import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest
import requests

README = Path(__file__).resolve().parents[2] / "README.md"
# What the first printed link must show, per example.
SHOWS = {
    "connect link and status from the internal API": "Connect your Stripe account",
    "sign a connect link without calling us": "Connect your Stripe account",
    "open a checkout for a cart and read the order": "Blue mug",
}


def examples():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    return [b for b in blocks if b.startswith("# bmos-example")]


def title(code):
    return code.splitlines()[0][len("# bmos-example: "):]


def env(name):
    value = os.environ.get(name)
    assert value, f"{name} not set: run through infra/test.sh"
    return value


@pytest.fixture(scope="module")
def connected_store():
    """A store connected through the real form, as a merchant would."""
    base, secret = env("CHECKOUT_BASE_URL"), env("INTERNAL_SECRET").encode()
    store_id, body = str(uuid.uuid4()), uuid.uuid4().hex
    return_url = "http://localhost:3000/admin"
    expires = str(int(time.time()) + 600)
    signature = hmac.new(secret, f"connect.{store_id}.{return_url}.{expires}".encode(), hashlib.sha256).hexdigest()
    query = urllib.parse.urlencode({"store_id": store_id, "return_url": return_url, "expires": expires, "signature": signature})
    form = requests.get(f"{base}/stripe/connect?{query}", timeout=10).text
    csrf = re.search(r'name="csrf_token" value="([0-9a-f]+)"', form).group(1)
    response = requests.post(
        f"{base}/stripe/connect",
        data={"store_id": store_id, "return_url": return_url, "expires": expires, "signature": signature,
              "csrf_token": csrf, "publishable_key": f"pk_test_{body}", "secret_key": f"sk_test_{body}"},
        headers={"Origin": base}, allow_redirects=False, timeout=10)
    assert response.status_code == 303, response.text
    return store_id


def test_the_readme_has_every_example():
    assert sorted(title(code) for code in examples()) == sorted(SHOWS)


@pytest.mark.parametrize("code", examples(), ids=title)
def test_example_runs_and_its_link_opens(code, connected_store):
    run_env = dict(os.environ, STORE_ID=connected_store)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, env=run_env)
    assert done.returncode == 0, done.stderr
    link = done.stdout.splitlines()[0]
    assert link.startswith(env("CHECKOUT_BASE_URL") + "/"), done.stdout
    with urllib.request.urlopen(link, timeout=10) as response:
        assert response.status == 200
        assert SHOWS[title(code)] in response.read().decode()
    if "checkout" in title(code):
        assert done.stdout.splitlines()[1] == "pending 2500 eur"
