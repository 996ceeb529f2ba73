"""The README's BMOS examples run as written against the local stack."""

import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def examples():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    return [b for b in blocks if b.startswith("# bmos-example")]


def test_the_readme_has_both_examples():
    assert len(examples()) == 2


@pytest.mark.parametrize("code", examples(), ids=lambda c: c.splitlines()[0][len("# bmos-example: "):])
def test_example_runs_and_its_link_opens_the_form(code):
    for name in ("CHECKOUT_BASE_URL", "INTERNAL_SECRET"):
        assert os.environ.get(name), f"{name} not set: run through infra/test.sh"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    link = done.stdout.splitlines()[0]
    assert link.startswith(os.environ["CHECKOUT_BASE_URL"] + "/stripe/connect?"), done.stdout
    with urllib.request.urlopen(link, timeout=10) as response:
        assert response.status == 200
        assert "Connect your Stripe account" in response.read().decode()
