"""Checks a running local stack against template.yaml and the KMS behaviour we rely on.

Run with the stack's env exported, e.g.:
    infra/stack.sh start && (source .local/stack/env && .local/venv/bin/pytest infra/tests)
"""

import os
import sys
from pathlib import Path

import boto3
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import bootstrap  # noqa: E402

if not os.environ.get("AWS_ENDPOINT_URL_DYNAMODB", "").startswith("http://127.0.0.1:"):
    pytest.exit("source the stack env first (infra/stack.sh start; source .local/stack/env)", 2)


def _sorted(items, key):
    return sorted(items, key=lambda x: x[key])


@pytest.fixture(scope="module")
def props():
    return bootstrap.table_properties()


@pytest.fixture(scope="module")
def table():
    return boto3.client("dynamodb").describe_table(TableName=os.environ["TABLE_NAME"])["Table"]


def test_key_schema_matches_template(props, table):
    assert table["KeySchema"] == props["KeySchema"]


def test_attribute_definitions_match_template(props, table):
    assert _sorted(table["AttributeDefinitions"], "AttributeName") == _sorted(
        props["AttributeDefinitions"], "AttributeName"
    )


def test_billing_mode_matches_template(props, table):
    assert table["BillingModeSummary"]["BillingMode"] == props["BillingMode"]


def test_gsis_match_template(props, table):
    def shape(gsis):
        return {
            g["IndexName"]: (g["KeySchema"], g["Projection"]["ProjectionType"],
                             sorted(g["Projection"].get("NonKeyAttributes", [])))
            for g in gsis
        }

    assert shape(table.get("GlobalSecondaryIndexes", [])) == shape(
        props.get("GlobalSecondaryIndexes", [])
    )


def test_ttl_enabled_as_in_template(props):
    ttl = boto3.client("dynamodb").describe_time_to_live(TableName=os.environ["TABLE_NAME"])
    desc = ttl["TimeToLiveDescription"]
    assert desc["TimeToLiveStatus"] == "ENABLED"
    assert desc["AttributeName"] == props["TimeToLiveSpecification"]["AttributeName"]


def test_kms_data_key_is_bound_to_encryption_context():
    kms = boto3.client("kms")
    key = kms.generate_data_key(
        KeyId=os.environ["KMS_KEY_ID"],
        KeySpec="AES_256",
        EncryptionContext={"store_id": "a", "purpose": "p"},
    )
    assert len(key["Plaintext"]) == 32

    # Same context decrypts back to the same key...
    same = kms.decrypt(
        CiphertextBlob=key["CiphertextBlob"],
        EncryptionContext={"store_id": "a", "purpose": "p"},
    )
    assert same["Plaintext"] == key["Plaintext"]

    # ...another store's context (or none) must not: the cross-store swap fails.
    for other in ({"store_id": "b", "purpose": "p"}, None):
        kwargs = {"EncryptionContext": other} if other else {}
        with pytest.raises(kms.exceptions.InvalidCiphertextException):
            kms.decrypt(CiphertextBlob=key["CiphertextBlob"], **kwargs)
