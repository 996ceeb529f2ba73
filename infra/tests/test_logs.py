"""Runs last in the test command: no log line written during the suite, by
the functions or the emulators, contains a Stripe secret, a webhook secret,
a bearer token or the internal secret."""

import os
import re
from pathlib import Path

import pytest

STACK_DIR = Path(os.environ.get("STACK_DIR", ""))
SECRET_PATTERNS = [
    re.compile(r"\b[sr]k_(test|live)_[A-Za-z0-9]{4,}"),
    re.compile(r"\bwhsec_[A-Za-z0-9]{4,}"),
    re.compile(r"Bearer\s+\S+"),
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
            for pattern in SECRET_PATTERNS:
                assert not pattern.search(line), f"{name}:{number}: {pattern.pattern} in {line[:200]}"
            assert internal not in line, f"{name}:{number}: the internal secret"


def test_the_patterns_catch_what_we_fear():
    for leaked in ["key=sk_live_51HqLyj", "rk_test_abcd1234 rejected", '"whsec_abcdEFGH"', "authorization: Bearer sk"]:
        assert any(p.search(leaked) for p in SECRET_PATTERNS), leaked
    for harmless in ["pk_test_51HqLyj", "key_kind=secret", "stripe_secret_key"]:
        assert not any(p.search(harmless) for p in SECRET_PATTERNS), harmless
