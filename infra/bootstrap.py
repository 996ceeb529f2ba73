"""Create the AWS resources the service needs inside the local emulators.

- DynamoDB table $TABLE_NAME, from Resources.Table.Properties of template.yaml, so
  the local table cannot drift from what is deployed.
- KMS symmetric key with alias $KMS_KEY_ID (moto keeps keys in memory only, so
  every stack start has to create it again).

Endpoints, region and credentials come from the environment
(AWS_ENDPOINT_URL_DYNAMODB, AWS_ENDPOINT_URL_KMS, AWS_REGION, ...), which boto3
reads by itself. Safe to run twice: existing table/alias are left alone.
"""

import os
import sys
from pathlib import Path

import boto3
import yaml

TEMPLATE = Path(__file__).resolve().parent.parent / "template.yaml"


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that accepts CloudFormation tags (!Sub, !Ref, !GetAtt, ...)."""


def _any_tag(loader, _tag_suffix, node):
    # Keep the tagged value as plain data; we only read literal properties.
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_mapping(node, deep=True)


_CfnLoader.add_multi_constructor("!", _any_tag)


def table_properties(template=TEMPLATE):
    with open(template) as f:
        return yaml.load(f, Loader=_CfnLoader)["Resources"]["Table"]["Properties"]


def create_table_args(props, table_name):
    """CreateTable arguments from the CloudFormation properties (TableName is
    replaced: the template's is a !Sub over the deploy environment)."""
    args = {
        "TableName": table_name,
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": props.get("BillingMode", "PROVISIONED"),
    }
    if props.get("GlobalSecondaryIndexes"):
        args["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
    if "ProvisionedThroughput" in props:
        args["ProvisionedThroughput"] = props["ProvisionedThroughput"]
    return args


def ensure_table(ddb, table_name):
    props = table_properties()
    try:
        ddb.create_table(**create_table_args(props, table_name))
        print(f"bootstrap: created table {table_name}")
    except ddb.exceptions.ResourceInUseException:
        print(f"bootstrap: table {table_name} already exists")
    ddb.get_waiter("table_exists").wait(
        TableName=table_name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 50}
    )

    ttl = props.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled"):
        current = ddb.describe_time_to_live(TableName=table_name)
        if current["TimeToLiveDescription"].get("TimeToLiveStatus") != "ENABLED":
            # DynamoDB Local records TTL but never deletes expired items.
            ddb.update_time_to_live(
                TableName=table_name,
                TimeToLiveSpecification={
                    "AttributeName": ttl["AttributeName"],
                    "Enabled": True,
                },
            )
            print(f"bootstrap: TTL enabled on {ttl['AttributeName']}")


def ensure_kms_alias(kms, alias):
    if not alias.startswith("alias/"):
        sys.exit(f"bootstrap: KMS_KEY_ID must be an alias/..., got {alias!r}")
    for page in kms.get_paginator("list_aliases").paginate():
        if any(a["AliasName"] == alias for a in page["Aliases"]):
            print(f"bootstrap: KMS alias {alias} already exists")
            return
    key_id = kms.create_key(
        Description=f"local data key wrapping ({alias})",
        KeySpec="SYMMETRIC_DEFAULT",
        KeyUsage="ENCRYPT_DECRYPT",
    )["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName=alias, TargetKeyId=key_id)
    print(f"bootstrap: created KMS key {key_id} as {alias}")


def main():
    for var in ("AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_KMS", "TABLE_NAME", "KMS_KEY_ID"):
        if not os.environ.get(var):
            sys.exit(f"bootstrap: {var} is not set")
    # Guard: this script creates resources, so it must never reach a real account.
    for var in ("AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_KMS"):
        if not os.environ[var].startswith("http://127.0.0.1:"):
            sys.exit(f"bootstrap: {var} must point at a local emulator (http://127.0.0.1:PORT)")
    ensure_table(boto3.client("dynamodb"), os.environ["TABLE_NAME"])
    ensure_kms_alias(boto3.client("kms"), os.environ["KMS_KEY_ID"])


if __name__ == "__main__":
    main()
