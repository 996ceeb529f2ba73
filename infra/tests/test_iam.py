"""Least privilege, as CloudFormation receives it: every function role of the
transformed template grants exactly what the table below says, and the
secrets key's policy lets only this stack's function roles use the key.

The table is the contract. It comes from reading the code: the pk prefixes
are the `format!("...#{}")` keys of shared/src/store/*.rs, the purposes the
`Purpose` values of shared/src/vault/keys.rs, and each function's entry lists the
store and vault calls its code paths make. A grant the table does not list
(an extra action, a wildcard resource, a missing or looser condition), an
entry the template does not grant, or a function missing from either side
fails the test. Every check has a mutation test showing it can fail.

Why these shapes:
- A TransactWriteItems has no action of its own in IAM: each item is
  authorised as PutItem/UpdateItem/DeleteItem (ConditionCheckItem for a
  ConditionCheck, which no code uses), with the same LeadingKeys conditions.
- The reconciler's Query on the pending-orders index carries no LeadingKeys
  condition: an index Query names the index's partition key (PENDING#n),
  not the table's pk, so a table-prefix condition does not bound it; the
  resource (that one index ARN) does.
- The secrets policies (ReadBmosAuthSecretPolicy, ReadLinkSigningSecretPolicy)
  are owned by the secrets work; here they are only checked not to grant
  anything on the table or the secrets key.
"""

import json

import pytest

from test_transform import mutated, transformed, VARIANTS

SK, WH, CT = "stripe_secret_key", "stripe_webhook_secret", "checkout_token"
TABLE, INDEX, KEY = "table", "table/index/pending-orders", "key"

# function -> action -> (resource, pk prefixes for DynamoDB | purposes for KMS | None)
EXPECTED = {
    "ConnectFunction": {
        # form: link_used, get_connection; save: save_connection (+ link use)
        "dynamodb:GetItem": (TABLE, {"STORE#*", "LINK#*"}),
        "dynamodb:PutItem": (TABLE, {"STORE#*", "LINK#*"}),
        # seals the secret key and the webhook secret; opens the previous
        # connection's key only to delete our old webhook endpoint
        "kms:GenerateDataKey": (KEY, {SK, WH}),
        "kms:Decrypt": (KEY, {SK}),
    },
    "StatusFunction": {"dynamodb:GetItem": (TABLE, {"STORE#*"})},
    # GET: no signed-request record (auth::internal::is_recorded)
    "InternalStatusFunction": {"dynamodb:GetItem": (TABLE, {"STORE#*"})},
    "ConnectLinksFunction": {"dynamodb:PutItem": (TABLE, {"REPLAY#*"})},
    "CheckoutSessionsFunction": {
        "dynamodb:GetItem": (TABLE, {"IDEMPOTENCY#*", "STORE#*"}),
        # record_signed_request, create_checkout's transaction
        "dynamodb:PutItem": (TABLE, {"REPLAY#*", "ORDER#*", "SESSION#*", "IDEMPOTENCY#*"}),
        "kms:GenerateDataKey": (KEY, {CT}),
        "kms:Decrypt": (KEY, {CT}),
    },
    "OrdersFunction": {"dynamodb:GetItem": (TABLE, {"ORDER#*"})},
    "OrderReviewFunction": {
        # get_order, then resolve_review's transaction: the order's update
        # and its audit entry (ORDER#{id} / AUDIT#...); record_signed_request
        "dynamodb:GetItem": (TABLE, {"ORDER#*"}),
        "dynamodb:UpdateItem": (TABLE, {"ORDER#*"}),
        "dynamodb:PutItem": (TABLE, {"REPLAY#*", "ORDER#*"}),
    },
    "CheckoutFunction": {
        "dynamodb:GetItem": (TABLE, {"SESSION#*", "ORDER#*", "STORE#*"}),
        # apply_intent: transition/flag/release on the order, note_api_payment
        "dynamodb:UpdateItem": (TABLE, {"ORDER#*", "STORE#*"}),
        "kms:Decrypt": (KEY, {SK}),
    },
    "CreateIntentFunction": {
        "dynamodb:GetItem": (TABLE, {"SESSION#*", "ORDER#*", "STORE#*"}),
        # attach_intent's transaction: the order's update and the PI# link
        "dynamodb:PutItem": (TABLE, {"PI#*"}),
        "dynamodb:UpdateItem": (TABLE, {"ORDER#*", "STORE#*"}),
        "kms:Decrypt": (KEY, {SK}),
    },
    "WebhookFunction": {
        # connection and intent link; the order of a payment, read before
        # Stripe is asked (others are changed by conditional updates alone)
        "dynamodb:GetItem": (TABLE, {"STORE#*", "PI#*", "ORDER#*"}),
        "dynamodb:UpdateItem": (TABLE, {"ORDER#*", "STORE#*"}),
        # verifies with the webhook secret; opens the merchant's key to read
        # a payment back from Stripe before the order is paid
        "kms:Decrypt": (KEY, {WH, SK}),
    },
    "ReconcilerFunction": {
        "dynamodb:Query": (INDEX, None),
        "dynamodb:GetItem": (TABLE, {"ORDER#*", "STORE#*"}),
        "dynamodb:UpdateItem": (TABLE, {"ORDER#*", "STORE#*"}),
        "kms:Decrypt": (KEY, {SK}),
    },
    "WebhookSecretFunction": {
        "dynamodb:GetItem": (TABLE, {"STORE#*"}),
        "dynamodb:PutItem": (TABLE, {"REPLAY#*", "STORE#*"}),
        # seals the new secret; opens nothing
        "kms:GenerateDataKey": (KEY, {WH}),
    },
    "DisconnectFunction": {
        "dynamodb:GetItem": (TABLE, {"STORE#*"}),
        # delete_connection's transaction: the connection goes, an audit entry comes
        "dynamodb:PutItem": (TABLE, {"REPLAY#*", "STORE#*"}),
        "dynamodb:DeleteItem": (TABLE, {"STORE#*"}),
        # opens the key to delete the webhook endpoint we created
        "kms:Decrypt": (KEY, {SK}),
    },
}

AWS_MANAGED = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
}
USE_ACTIONS = ("kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:ReEncrypt", "kms:CreateGrant", "kms:*")
ROLE_PATH = {"Fn::Sub": "/checkout-best/${AWS::StackName}/"}
ROLE_ARN_PATTERN = {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/checkout-best/${AWS::StackName}/*"}
STORE_CONTEXT = {
    "ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["purpose", "store_id"]},
    "Null": {"kms:EncryptionContextKeys": "false"},
}


def _listed(value):
    return value if isinstance(value, list) else [value]


def _resource(value):
    """A name for the resources the table speaks of; anything else (a
    wildcard, another table, a literal ARN) keeps its JSON and fails."""
    if value == {"Fn::GetAtt": ["Table", "Arn"]}:
        return TABLE
    if value == {"Fn::Sub": "${Table.Arn}/index/pending-orders"}:
        return INDEX
    if value == {"Fn::GetAtt": ["SecretsKey", "Arn"]}:
        return KEY
    return json.dumps(value, sort_keys=True)


def _sorted_lists(value):
    if isinstance(value, dict):
        return {k: _sorted_lists(v) for k, v in value.items()}
    if isinstance(value, list):
        return sorted(value)
    return value


def _expected_condition(action, values):
    """The exact condition block a grant of `action` must carry."""
    if values is None:
        return None
    if action.startswith("dynamodb:"):
        return {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": sorted(values)}}
    return {
        "StringEquals": {"kms:EncryptionContext:purpose": sorted(values)},
        "ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["purpose", "store_id"]},
        "Null": {"kms:EncryptionContextKeys": "false", "kms:EncryptionContext:store_id": "false"},
    }


def function_roles(template):
    """Function logical id -> its role's properties (SAM names it <Fn>Role)."""
    resources = template["Resources"]
    return {
        name: resources.get(name + "Role", {}).get("Properties")
        for name, resource in resources.items()
        if resource["Type"] == "AWS::Lambda::Function"
    }


def managed_policy_problems(template, function, arns):
    problems = []
    resources = template["Resources"]
    for arn in arns:
        if isinstance(arn, str) and arn in AWS_MANAGED:
            continue
        target = arn.get("Ref") if isinstance(arn, dict) else None
        policy = resources.get(target, {})
        if policy.get("Type") != "AWS::IAM::ManagedPolicy":
            problems.append(f"{function}: managed policy {json.dumps(arn)} is not one this test knows")
            continue
        for statement in _listed(policy["Properties"]["PolicyDocument"]["Statement"]):
            for action in _listed(statement["Action"]):
                resources_named = {_resource(r) for r in _listed(statement.get("Resource", []))}
                if action.startswith("dynamodb:") or resources_named & {TABLE, INDEX, KEY}:
                    problems.append(f"{function}: {target} grants {action} on the table or key outside the table of grants")
    return problems


def role_problems(template, expected=EXPECTED):
    problems = []
    roles = function_roles(template)
    for function in sorted(set(roles) - set(expected)):
        problems.append(f"{function}: not in the table of grants")
    for function in sorted(set(expected) - set(roles)):
        problems.append(f"{function}: in the table but not in the template")
    for function in sorted(set(roles) & set(expected)):
        role = roles[function]
        if role is None:
            problems.append(f"{function}: has no SAM-made role to check")
            continue
        if role.get("Path") != ROLE_PATH:
            problems.append(f"{function}: role path {role.get('Path')!r}, the key policy names {ROLE_PATH}")
        problems += managed_policy_problems(template, function, role.get("ManagedPolicyArns", []))
        granted = {}
        for policy in role.get("Policies", []):
            for statement in _listed(policy["PolicyDocument"]["Statement"]):
                if statement.get("Effect") != "Allow" or "NotAction" in statement or "NotResource" in statement:
                    problems.append(f"{function}: statement of an unexpected shape {json.dumps(statement)}")
                    continue
                for action in _listed(statement["Action"]):
                    if action in granted:
                        problems.append(f"{function}: {action} granted twice (one grant per action keeps it reviewable)")
                    resources = [_resource(r) for r in _listed(statement["Resource"])]
                    granted[action] = (resources, statement.get("Condition"))
        want = expected[function]
        for action in sorted(set(granted) - set(want)):
            problems.append(f"{function}: grants {action}, which its code does not call")
        for action in sorted(set(want) - set(granted)):
            problems.append(f"{function}: lacks {action}, which its code calls")
        for action in sorted(set(granted) & set(want)):
            resources, condition = granted[action]
            resource, values = want[action]
            if resources != [resource]:
                problems.append(f"{function}: {action} on {resources}, expected only {resource}")
            if _sorted_lists(condition) != _expected_condition(action, values):
                problems.append(
                    f"{function}: {action} condition {json.dumps(condition, sort_keys=True)},"
                    f" expected {json.dumps(_expected_condition(action, values), sort_keys=True)}"
                )
    return problems


def key_policy_problems(template):
    problems = []
    statements = _listed(template["Resources"]["SecretsKey"]["Properties"]["KeyPolicy"]["Statement"])
    for statement in statements:
        actions = _listed(statement.get("Action", []))
        uses = [a for a in actions if a.startswith(USE_ACTIONS) or a in ("*", "kms:Create*")]
        if statement.get("Effect") != "Allow" or "NotAction" in statement or "NotPrincipal" in statement:
            problems.append(f"key policy statement {statement.get('Sid')} has an unexpected shape")
        if not uses:
            continue
        condition = _sorted_lists(statement.get("Condition") or {})
        if any("*" in a or a == "kms:CreateGrant" for a in uses):
            problems.append(f"key policy {statement.get('Sid')} grants {uses}: wildcards or grants hand use on")
        if condition.get("ArnLike", {}).get("aws:PrincipalArn") != ROLE_ARN_PATTERN:
            problems.append(f"key policy {statement.get('Sid')} lets {uses} be used beyond this stack's function roles")
        for name, value in STORE_CONTEXT.items():
            if condition.get(name) != value:
                problems.append(f"key policy {statement.get('Sid')} lacks the {name} store-context condition")
    return problems


@pytest.fixture(params=sorted(VARIANTS), ids=sorted(VARIANTS))
def cfn(request):
    return transformed(**VARIANTS[request.param])


def test_every_function_role_grants_exactly_the_table(cfn):
    assert role_problems(cfn) == []


def test_the_secrets_key_is_used_only_by_this_stacks_functions(cfn):
    assert key_policy_problems(cfn) == []


# --- mutations: each check can fail -----------------------------------------


def _statements(template, function):
    for policy in template["Resources"][function]["Properties"]["Policies"]:
        if isinstance(policy, dict) and "Statement" in policy:
            return policy["Statement"]
    raise AssertionError(f"{function} has no inline statements")


def _grant(template, function, action):
    return next(s for s in _statements(template, function) if action in s["Action"])


def test_an_extra_action_is_caught():
    def widen(template):
        _grant(template, "WebhookFunction", "dynamodb:GetItem")["Action"].append("dynamodb:PutItem")

    assert role_problems(mutated(widen)) == ["WebhookFunction: grants dynamodb:PutItem, which its code does not call"]


def test_a_wildcard_action_or_resource_is_caught():
    def wildcard(template):
        _statements(template, "StatusFunction").append({"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"})

    assert role_problems(mutated(wildcard)) == ["StatusFunction: grants dynamodb:*, which its code does not call"]

    def star(template):
        _grant(template, "OrdersFunction", "dynamodb:GetItem")["Resource"] = "*"

    assert role_problems(mutated(star)) == ['OrdersFunction: dynamodb:GetItem on [\'"*"\'], expected only table']


def test_a_missing_or_wider_leading_keys_condition_is_caught():
    def drop(template):
        del _grant(template, "StatusFunction", "dynamodb:GetItem")["Condition"]

    [problem] = role_problems(mutated(drop))
    assert problem.startswith("StatusFunction: dynamodb:GetItem condition null")

    def widen(template):
        grant = _grant(template, "StatusFunction", "dynamodb:GetItem")
        grant["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"].append("ORDER#*")

    [problem] = role_problems(mutated(widen))
    assert problem.startswith("StatusFunction: dynamodb:GetItem condition") and "ORDER#*" in problem


def test_a_missing_or_other_purpose_is_caught():
    def drop(template):
        del _grant(template, "CreateIntentFunction", "kms:Decrypt")["Condition"]["StringEquals"]

    [problem] = role_problems(mutated(drop))
    assert problem.startswith("CreateIntentFunction: kms:Decrypt condition")

    def webhook_opens_tokens(template):
        grant = _grant(template, "WebhookFunction", "kms:Decrypt")
        grant["Condition"]["StringEquals"]["kms:EncryptionContext:purpose"].append(CT)

    [problem] = role_problems(mutated(webhook_opens_tokens))
    assert problem.startswith("WebhookFunction: kms:Decrypt condition")


def test_a_function_missing_from_the_table_or_the_template_is_caught():
    table = {k: v for k, v in EXPECTED.items() if k != "OrdersFunction"}
    assert role_problems(transformed(), table) == ["OrdersFunction: not in the table of grants"]
    extra = {**EXPECTED, "NotifierFunction": {}}
    assert role_problems(transformed(), extra) == ["NotifierFunction: in the table but not in the template"]


def test_a_missing_grant_and_a_table_read_in_a_secrets_policy_are_caught():
    def drop(template):
        statements = _statements(template, "ReconcilerFunction")
        statements.remove(_grant(template, "ReconcilerFunction", "dynamodb:Query"))

    assert role_problems(mutated(drop)) == ["ReconcilerFunction: lacks dynamodb:Query, which its code calls"]

    def smuggle(template):
        policy = template["Resources"]["ReadBmosAuthSecretPolicy"]["Properties"]["PolicyDocument"]
        policy["Statement"].append({"Effect": "Allow", "Action": "dynamodb:Scan", "Resource": {"Fn::GetAtt": ["Table", "Arn"]}})

    problems = role_problems(mutated(smuggle))
    assert problems and all("ReadBmosAuthSecretPolicy grants dynamodb:Scan" in p for p in problems)


def test_a_role_off_the_path_is_caught():
    def own_path(template):
        template["Resources"]["OrdersFunction"]["Properties"]["RolePath"] = "/"

    [problem] = role_problems(mutated(own_path))
    assert problem.startswith("OrdersFunction: role path '/'")


def test_a_key_policy_handing_use_to_the_account_is_caught():
    def root_everything(template):
        policy = template["Resources"]["SecretsKey"]["Properties"]["KeyPolicy"]
        policy["Statement"][0]["Action"] = "kms:*"

    assert key_policy_problems(mutated(root_everything)) == [
        "key policy AccountAdministers grants ['kms:*']: wildcards or grants hand use on",
        "key policy AccountAdministers lets ['kms:*'] be used beyond this stack's function roles",
        "key policy AccountAdministers lacks the ForAllValues:StringEquals store-context condition",
        "key policy AccountAdministers lacks the Null store-context condition",
    ]

    def any_role(template):
        use = template["Resources"]["SecretsKey"]["Properties"]["KeyPolicy"]["Statement"][1]
        del use["Condition"]["ArnLike"]

    assert key_policy_problems(mutated(any_role)) == [
        "key policy StackFunctionsUseWithStoreContext lets ['kms:Decrypt', 'kms:GenerateDataKey']"
        " be used beyond this stack's function roles"
    ]
