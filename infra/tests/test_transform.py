"""template.yaml as CloudFormation receives it: transformed offline by the SAM
translator (the library `sam` uses), then checked for what CloudFormation or an
operator would refuse. No network and no AWS credentials.

- No dependency cycle (CloudFormation refuses the whole stack, and cfn-lint
  does not see the one a function's environment referencing the API makes).
- cfn-lint finds nothing in the transformed template.
- Physical names two stacks (dev, prod) can share an account with.
- Operations: a JSON log group with retention and Errors/Throttles alarms per
  function, API access logs without paths or query strings, the reconciler
  schedule's retries and dead-letter queue, an encrypted alarm topic, the
  business-metric alarms, the env contract (PUBLIC_BASE_URL, METRICS_NAMESPACE).

Every check is a function returning the problems it finds, and each has a test
that feeds it a broken template to show it can fail.

TEMPLATE_UNDER_TEST=/path/to/template.yaml checks another template (for
example `git show HEAD~1:template.yaml`).
"""

import copy
import functools
import json
import os
import re
import subprocess
import sys
from collections import deque
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = Path(os.environ.get("TEMPLATE_UNDER_TEST") or ROOT / "template.yaml")
CFN_LINT = Path(sys.executable).parent / "cfn-lint"
REGION = "eu-central-1"
ACCOUNT = "123456789012"

BASE_PARAMS = {
    "AllowedReturnHosts": "shop.example",
    "AlarmEmail": "ops@checkout.best",
}
DOMAIN_PARAMS = {
    "DomainName": "secure.checkout.best",
    "CertificateArn": f"arn:aws:acm:{REGION}:{ACCOUNT}:certificate/0f4e5a8c-1111-2222-3333-444455556666",
    "HostedZoneId": "Z0123456789ABCDEFGHIJ",
}
# The conditions change which resources exist: every check runs on both.
VARIANTS = {
    "no-domain": {},
    "domain": DOMAIN_PARAMS,
}

OLD_PUBLIC_BASE_URL = {"Fn::Sub": "https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/"}


# --- loading and transforming ------------------------------------------------


class _CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation short forms into their long forms (!GetAtt A.B
    becomes {"Fn::GetAtt": ["A", "B"]}), as the SAM CLI does. A subclass, so the
    global SafeLoader stays untouched for the other tests."""


def _intrinsic(loader, _suffix, node):
    tag = node.tag[1:]
    name = tag if tag in ("Ref", "Condition") else "Fn::" + tag
    if tag == "GetAtt" and isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node).split(".", 1)
    elif isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


@functools.cache
def _source_text(path=TEMPLATE):
    return Path(path).read_text()


def source():
    """A fresh copy of the template under test, as a dict."""
    return yaml.load(_source_text(), Loader=_CfnLoader)


class _NoManagedPolicies:
    """The translator asks IAM for managed policy names only for policies given
    by name; the template gives none (a lookup would need AWS)."""

    def load(self):
        return {}


def sam_transform(template, parameters):
    """What `sam package && sam deploy` submit: every function gets an s3://
    code location first, as `sam package` does, then the SAM transform runs
    offline with the region set."""
    from samtranslator.translator.transform import transform

    template = copy.deepcopy(template)
    for resource in template.get("Resources", {}).values():
        if resource.get("Type") == "AWS::Serverless::Function":
            resource.setdefault("Properties", {})["CodeUri"] = "s3://checkout-best-artifacts/function.zip"
    saved = os.environ.get("AWS_DEFAULT_REGION")
    os.environ["AWS_DEFAULT_REGION"] = REGION
    try:
        return transform(template, {**BASE_PARAMS, **parameters}, _NoManagedPolicies())
    finally:
        if saved is None:
            del os.environ["AWS_DEFAULT_REGION"]
        else:
            os.environ["AWS_DEFAULT_REGION"] = saved


@functools.cache
def _transformed_json(variant_items):
    return json.dumps(sam_transform(source(), dict(variant_items)))


def transformed(**parameters):
    """The transformed template under test (cached; each caller gets its own copy)."""
    return json.loads(_transformed_json(tuple(sorted(parameters.items()))))


@pytest.fixture(params=sorted(VARIANTS), ids=sorted(VARIANTS))
def cfn(request):
    return transformed(**VARIANTS[request.param])


def mutated(change, **parameters):
    """Transform the template under test after `change(template)` broke it."""
    template = source()
    change(template)
    return sam_transform(template, parameters)


# --- the dependency graph ----------------------------------------------------

_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


def sub_references(text, own_variables=()):
    """Names a Fn::Sub string reads: ${X} and ${X.Attr}, not ${!literal}, not
    pseudo parameters, not the Sub's own variables."""
    names = set()
    for inner in _SUB_VARIABLE.findall(text):
        inner = inner.strip()
        if not inner or inner.startswith("!") or inner.startswith("AWS::"):
            continue
        if inner in own_variables:
            continue
        names.add(inner.split(".", 1)[0])
    return names


def references(value):
    """Every logical name `value` reads through Ref, Fn::GetAtt or Fn::Sub."""
    found = set()
    if isinstance(value, list):
        for item in value:
            found |= references(item)
    elif isinstance(value, dict):
        for key, arg in value.items():
            if key == "Ref" and isinstance(arg, str):
                found.add(arg)
            elif key == "Fn::GetAtt":
                if isinstance(arg, str):
                    found.add(arg.split(".", 1)[0])
                elif isinstance(arg, list) and arg and isinstance(arg[0], str):
                    found.add(arg[0])
                    found |= references(arg[1:])
            elif key == "Fn::Sub":
                if isinstance(arg, str):
                    found |= sub_references(arg)
                elif isinstance(arg, list) and arg:
                    variables = arg[1] if len(arg) > 1 and isinstance(arg[1], dict) else {}
                    if isinstance(arg[0], str):
                        found |= sub_references(arg[0], variables)
                    found |= references(variables)
            else:
                found |= references(arg)
    return found


def dependency_graph(template):
    """resource -> the resources it needs first (Ref, GetAtt, Sub, DependsOn)."""
    resources = template.get("Resources", {})
    graph = {}
    for name, resource in resources.items():
        needs = references({k: v for k, v in resource.items() if k != "DependsOn"})
        depends_on = resource.get("DependsOn", [])
        needs |= {depends_on} if isinstance(depends_on, str) else set(depends_on)
        graph[name] = sorted(n for n in needs if n in resources)
    return graph


def _strongly_connected(graph):
    """Tarjan's algorithm, iterative (no recursion limit on big templates)."""
    index, low, on_stack, stack, groups, counter = {}, {}, set(), [], [], [0]
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(graph[child])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.add(member)
                    if member == node:
                        break
                groups.append(group)
    return groups


def _shortest_cycle(graph, group):
    """A shortest cycle inside one strongly connected group, from its most
    referenced member (for a template, the hub: usually the API)."""
    start = max(sorted(group), key=lambda n: sum(n in graph[m] for m in group))
    previous, queue = {start: None}, deque([start])
    while queue:
        node = queue.popleft()
        for child in graph[node]:
            if child not in group:
                continue
            if child == start:
                path = [node]  # back from node to start, then reversed
                while previous[path[-1]] is not None:
                    path.append(previous[path[-1]])
                return path[::-1] + [start]
            if child not in previous:
                previous[child] = node
                queue.append(child)
    raise AssertionError(f"no cycle in {group}")


def dependency_cycles(template):
    """One readable cycle per group of resources that wait on each other,
    e.g. ["HttpApi", "CheckoutFunction", "HttpApi"]."""
    graph = dependency_graph(template)
    cycles = []
    for group in _strongly_connected(graph):
        if len(group) > 1 or any(n in graph[n] for n in group):
            cycles.append((_shortest_cycle(graph, group), sorted(group)))
    return sorted(cycles)


def cycle_problems(template):
    return [
        f"dependency cycle {' -> '.join(cycle)}"
        + (f" (all of {', '.join(group)} wait on each other)" if len(group) > 2 else "")
        for cycle, group in dependency_cycles(template)
    ]


# --- resolving names and conditions for one stack ----------------------------


class Unresolvable(Exception):
    pass


class Stack:
    """Just enough of CloudFormation to resolve names and conditions: Ref and
    Fn::Sub of parameters and pseudo parameters, Fn::Join, Fn::If and the
    condition functions. A resource's own generated name is stack-unique, so a
    Ref to it resolves to a stand-in with the stack name in it."""

    def __init__(self, template, stack_name, parameters):
        self.template = template
        self.values = {
            name: str(spec["Default"])
            for name, spec in template.get("Parameters", {}).items()
            if "Default" in spec
        }
        self.values.update({k: str(v) for k, v in {**BASE_PARAMS, **parameters}.items()})
        self.values.update(
            {
                "AWS::StackName": stack_name,
                "AWS::StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{stack_name}/0000",
                "AWS::Region": REGION,
                "AWS::AccountId": ACCOUNT,  # the same account for both stacks: that is the point
                "AWS::Partition": "aws",
                "AWS::URLSuffix": "amazonaws.com",
            }
        )
        self.stack_name = stack_name

    def _lookup(self, name):
        if name in self.values:
            return self.values[name]
        if name in self.template.get("Resources", {}):
            return f"{self.stack_name}-{name}-GENERATED"
        raise Unresolvable(name)

    def condition(self, name):
        return self.truth(self.template["Conditions"][name])

    def truth(self, value):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        (fn, arg), = value.items()
        if fn == "Condition":
            return self.condition(arg)
        if fn == "Fn::Equals":
            return self.resolve(arg[0]) == self.resolve(arg[1])
        if fn == "Fn::Not":
            return not self.truth(arg[0])
        if fn == "Fn::And":
            return all(self.truth(a) for a in arg)
        if fn == "Fn::Or":
            return any(self.truth(a) for a in arg)
        if fn == "Fn::If":
            return self.truth(arg[1] if self.condition(arg[0]) else arg[2])
        raise Unresolvable(fn)

    def resolve(self, value):
        if isinstance(value, (str, int, float, bool)):
            return value
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict) or len(value) != 1:
            raise Unresolvable(repr(value))
        (fn, arg), = value.items()
        if fn == "Ref":
            return self._lookup(arg)
        if fn == "Fn::Sub":
            text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1] if len(arg) > 1 else {})
            variables = {k: self.resolve(v) for k, v in variables.items()}

            def one(match):
                inner = match.group(1)
                if inner.startswith("!"):
                    return "${" + inner[1:] + "}"
                if inner in variables:
                    return str(variables[inner])
                return str(self._lookup(inner.split(".", 1)[0]))

            return _SUB_VARIABLE.sub(one, text)
        if fn == "Fn::Join":
            return str(self.resolve(arg[0])).join(str(self.resolve(v)) for v in self.resolve(arg[1]))
        if fn == "Fn::If":
            return self.resolve(arg[1] if self.condition(arg[0]) else arg[2])
        if fn == "Fn::GetAtt":
            name = arg[0] if isinstance(arg, list) else arg.split(".", 1)[0]
            return f"{self._lookup(name)}-{arg[1] if isinstance(arg, list) else arg.split('.', 1)[1]}"
        raise Unresolvable(fn)

    def exists(self, resource):
        return "Condition" not in resource or self.condition(resource["Condition"])


# The properties that name a resource in the account (and region) namespace.
NAME_PROPERTIES = {
    "AWS::DynamoDB::Table": ["TableName"],
    "AWS::KMS::Alias": ["AliasName"],
    "AWS::Scheduler::Schedule": ["Name"],
    "AWS::Scheduler::ScheduleGroup": ["Name"],
    "AWS::Logs::LogGroup": ["LogGroupName"],
    "AWS::Logs::MetricFilter": ["FilterName"],
    "AWS::CloudWatch::Alarm": ["AlarmName"],
    "AWS::CloudWatch::Dashboard": ["DashboardName"],
    "AWS::SQS::Queue": ["QueueName"],
    "AWS::SNS::Topic": ["TopicName"],
    "AWS::SSM::Parameter": ["Name"],
    "AWS::SecretsManager::Secret": ["Name"],
    "AWS::Lambda::Function": ["FunctionName"],
    "AWS::IAM::Role": ["RoleName"],
    "AWS::IAM::ManagedPolicy": ["ManagedPolicyName"],
    "AWS::Events::Rule": ["Name"],
    "AWS::S3::Bucket": ["BucketName"],
    # Named by a parameter (DomainName): the operator gives each stack its own.
    "AWS::ApiGatewayV2::DomainName": ["DomainName"],
    "AWS::Route53::RecordSet": ["Name"],
}
# Types whose names are not account-wide (or that have none). A type in
# neither list fails test_every_resource_type_is_known_to_the_name_check.
UNNAMED_TYPES = {
    "AWS::ApiGatewayV2::Api",  # Name is a label, not unique
    "AWS::ApiGatewayV2::Stage",
    "AWS::ApiGatewayV2::ApiMapping",
    "AWS::KMS::Key",
    "AWS::SNS::Subscription",
    "AWS::Lambda::Permission",
}

STACKS = {
    "dev": ("checkout-best-dev", {"Environment": "dev", "DomainName": "secure.dev.checkout.best"}),
    "prod": ("checkout-best-prod", {"Environment": "prod", "DomainName": "secure.checkout.best"}),
}


def physical_names(template, stack_name, parameters):
    """(type, name) for every name the template fixes, resolved for one stack."""
    stack = Stack(template, stack_name, parameters)
    names = set()
    for logical, resource in template["Resources"].items():
        if not stack.exists(resource):
            continue
        for prop in NAME_PROPERTIES.get(resource["Type"], []):
            value = resource.get("Properties", {}).get(prop)
            if value is None:
                continue  # CloudFormation generates one from the stack name
            names.add((resource["Type"], stack.resolve(value), logical))
    return names


def shared_name_problems(transform=transformed):
    per_stack = {}
    for env, (stack_name, parameters) in STACKS.items():
        params = {**DOMAIN_PARAMS, **parameters}
        per_stack[env] = physical_names(transform(**params), stack_name, params)
    dev = {(t, n): logical for t, n, logical in per_stack["dev"]}
    prod = {(t, n): logical for t, n, logical in per_stack["prod"]}
    return [f"{dev[key]} ({key[0]}) is named {key[1]!r} in both the dev and the prod stack" for key in sorted(dev.keys() & prod.keys())]


# --- operations checks (each returns its problems) ---------------------------


def of_type(template, type_):
    return {n: r for n, r in template["Resources"].items() if r["Type"] == type_}


def _ref(value):
    return value.get("Ref") if isinstance(value, dict) else None


def _getatt_target(value):
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        arg = value["Fn::GetAtt"]
        return arg[0] if isinstance(arg, list) else arg.split(".", 1)[0]
    return None


def _alarm_for(template, namespace, metric, dimension_name, target_matches):
    for alarm in of_type(template, "AWS::CloudWatch::Alarm").values():
        p = alarm["Properties"]
        if p.get("Namespace") != namespace or p.get("MetricName") != metric or not p.get("AlarmActions"):
            continue
        if any(d["Name"] == dimension_name and target_matches(d["Value"]) for d in p.get("Dimensions", [])):
            return alarm
    return None


def function_problems(template):
    problems = []
    groups = of_type(template, "AWS::Logs::LogGroup")
    functions = of_type(template, "AWS::Lambda::Function")
    if not functions:
        problems.append("no AWS::Lambda::Function at all")
    for name, fn in sorted(functions.items()):
        logging = fn["Properties"].get("LoggingConfig", {})
        group = _ref(logging.get("LogGroup"))
        if logging.get("LogFormat") != "JSON":
            problems.append(f"{name}: LoggingConfig.LogFormat is not JSON")
        if group not in groups:
            problems.append(f"{name}: LoggingConfig.LogGroup is not a log group of this stack")
        elif not isinstance(groups[group]["Properties"].get("RetentionInDays"), int):
            problems.append(f"{name}: its log group {group} keeps logs forever (no RetentionInDays)")
        for metric in ("Errors", "Throttles"):
            if not _alarm_for(template, "AWS/Lambda", metric, "FunctionName", lambda v, n=name: _ref(v) == n):
                problems.append(f"{name}: no {metric} alarm")
    return problems


FORBIDDEN_IN_ACCESS_LOG = re.compile(r"\$context\.(path|resourcePath)\b|\$request\.|\$input\.|query", re.I)


def access_log_problems(template):
    problems = []
    stages = of_type(template, "AWS::ApiGatewayV2::Stage")
    if not stages:
        problems.append("no API stage")
    for name, stage in sorted(stages.items()):
        settings = stage["Properties"].get("AccessLogSettings")
        if not settings:
            problems.append(f"{name}: no access logs")
            continue
        fmt = settings.get("Format", "")
        try:
            fields = json.loads(fmt)
        except (TypeError, ValueError):
            problems.append(f"{name}: the access log format is not JSON: {fmt!r}")
            continue
        if "$context.routeKey" not in fields.values():
            problems.append(f"{name}: the access log has no $context.routeKey")
        for key, value in fields.items():
            if FORBIDDEN_IN_ACCESS_LOG.search(value) or FORBIDDEN_IN_ACCESS_LOG.search(key):
                problems.append(f"{name}: the access log writes {key}={value} (paths carry checkout tokens, queries signatures)")
        group = _getatt_target(settings.get("DestinationArn"))
        log_group = template["Resources"].get(group, {})
        if log_group.get("Type") != "AWS::Logs::LogGroup":
            problems.append(f"{name}: access logs do not go to a log group of this stack")
        elif not isinstance(log_group["Properties"].get("RetentionInDays"), int):
            problems.append(f"{name}: the access log group {group} has no RetentionInDays")
    return problems


def schedule_problems(template):
    problems = []
    schedules = of_type(template, "AWS::Scheduler::Schedule")
    if not schedules:
        problems.append("no schedule (the reconciler's)")
    for name, schedule in sorted(schedules.items()):
        target = schedule["Properties"].get("Target", {})
        retry = target.get("RetryPolicy", {})
        for key in ("MaximumRetryAttempts", "MaximumEventAgeInSeconds"):
            if not isinstance(retry.get(key), int):
                problems.append(f"{name}: RetryPolicy.{key} is not set")
        queue = _getatt_target(target.get("DeadLetterConfig", {}).get("Arn"))
        if template["Resources"].get(queue, {}).get("Type") != "AWS::SQS::Queue":
            problems.append(f"{name}: no dead-letter queue of this stack")
        elif not _alarm_for(
            template, "AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName",
            lambda v: _getatt_target(v) == queue or _ref(v) == queue,
        ):
            problems.append(f"{name}: no alarm on its dead-letter queue {queue}")
    return problems


def topic_problems(template):
    problems = []
    topics = of_type(template, "AWS::SNS::Topic")
    if not topics:
        problems.append("no alarm topic")
    for name, topic in sorted(topics.items()):
        key = topic.get("Properties", {}).get("KmsMasterKeyId")
        if key is None:
            problems.append(f"{name}: not encrypted (no KmsMasterKeyId)")
            continue
        if isinstance(key, str):
            # alias/aws/sns: CloudWatch alarms cannot publish through it.
            problems.append(f"{name}: encrypted with {key}, not a key of this stack that CloudWatch may use")
            continue
        key_resource = template["Resources"].get(_ref(key) or _getatt_target(key), {})
        statements = key_resource.get("Properties", {}).get("KeyPolicy", {}).get("Statement", [])
        allowed = set()
        for st in statements:
            services = st.get("Principal", {}).get("Service", [])
            services = [services] if isinstance(services, str) else services
            if st.get("Effect") == "Allow" and "cloudwatch.amazonaws.com" in services:
                actions = st.get("Action", [])
                allowed |= {actions} if isinstance(actions, str) else set(actions)
        if not {"kms:Decrypt", "kms:GenerateDataKey*"} <= allowed:
            problems.append(f"{name}: its key does not let cloudwatch.amazonaws.com use it (kms:Decrypt, kms:GenerateDataKey*)")
    alarms = of_type(template, "AWS::CloudWatch::Alarm")
    for name, alarm in sorted(alarms.items()):
        if not any(_ref(a) in topics for a in alarm["Properties"].get("AlarmActions", [])):
            problems.append(f"{name}: does not notify the alarm topic")
    return problems


METRICS_NAMESPACE = {"Fn::Sub": "CheckoutBest/${AWS::StackName}"}
BUSINESS_ALARMS = [
    ("WebhookDeliveries", [{"Name": "Outcome", "Value": "refused"}]),
    ("ReconcilerPaidWithWebhook", []),
    ("ReconcilerErrors", []),
    ("ReconcilerOldestUnexaminedDue", []),
]


def metrics_problems(template):
    problems = []
    for name, fn in sorted(of_type(template, "AWS::Lambda::Function").items()):
        env = fn["Properties"].get("Environment", {}).get("Variables", {})
        if env.get("METRICS_NAMESPACE") != METRICS_NAMESPACE:
            problems.append(f"{name}: METRICS_NAMESPACE is {env.get('METRICS_NAMESPACE')!r}")
    alarms = [a["Properties"] for a in of_type(template, "AWS::CloudWatch::Alarm").values()]
    for metric, dimensions in BUSINESS_ALARMS:
        if not any(
            a.get("Namespace") == METRICS_NAMESPACE and a.get("MetricName") == metric
            and a.get("Dimensions", []) == dimensions and a.get("AlarmActions")
            for a in alarms
        ):
            problems.append(f"no alarm on {metric} {dimensions or '(no dimensions)'} in {METRICS_NAMESPACE}")
    return problems


# --- tests: cycles -------------------------------------------------------------


def test_transformed_template_has_no_dependency_cycle(cfn):
    problems = cycle_problems(cfn)
    assert not problems, "CloudFormation refuses a template with a " + "\n".join(problems)


def test_the_api_url_in_globals_is_found_as_a_cycle():
    """Today's bug: Globals' PUBLIC_BASE_URL read the API, whose definition reads
    every function."""

    def put_back(template):
        template["Globals"]["Function"]["Environment"]["Variables"]["PUBLIC_BASE_URL"] = OLD_PUBLIC_BASE_URL

    problems = cycle_problems(mutated(put_back))
    assert problems and problems[0].startswith("dependency cycle HttpApi -> "), problems


def test_a_log_group_named_from_its_function_is_found_as_a_cycle():
    def name_from_function(template):
        group = template["Resources"]["WebhookFunctionLogGroup"]["Properties"]
        group["LogGroupName"] = {"Fn::Sub": "/aws/lambda/${WebhookFunction}"}

    assert any("WebhookFunction" in p and "WebhookFunctionLogGroup" in p for p in cycle_problems(mutated(name_from_function)))


def test_every_reference_form_is_an_edge():
    template = {"Resources": {
        "A": {"Type": "T", "Properties": {"x": {"Ref": "B"}}},
        "B": {"Type": "T", "Properties": {"x": {"Fn::GetAtt": ["C", "Arn"]}}},
        "C": {"Type": "T", "Properties": {"x": {"Fn::GetAtt": "D.Arn"}}},
        "D": {"Type": "T", "Properties": {"x": {"Fn::Sub": "${E.Arn}/${AWS::Region}"}}},
        "E": {"Type": "T", "Properties": {"x": {"Fn::Sub": ["${v}${F}", {"v": {"Ref": "G"}}]}}},
        "F": {"Type": "T", "Properties": {}},
        "G": {"Type": "T", "DependsOn": "A", "Properties": {}},
    }}
    assert dependency_graph(template) == {"A": ["B"], "B": ["C"], "C": ["D"], "D": ["E"], "E": ["F", "G"], "F": [], "G": ["A"]}
    assert cycle_problems(template) == ["dependency cycle A -> B -> C -> D -> E -> G -> A (all of A, B, C, D, E, G wait on each other)"]


def test_literals_pseudo_parameters_and_own_variables_are_not_edges():
    template = {"Resources": {
        "A": {"Type": "T", "Properties": {
            "x": {"Fn::Sub": "${!B} ${AWS::StackName} ${AWS::Region}"},
            "y": {"Fn::Sub": ["${B}", {"B": "literal"}]},
            "z": {"Ref": "AWS::NoValue"},
        }},
        "B": {"Type": "T", "DependsOn": ["A"], "Properties": {}},
    }}
    assert dependency_graph(template) == {"A": [], "B": ["A"]}
    assert cycle_problems(template) == []


def test_a_resource_needing_itself_is_a_cycle():
    template = {"Resources": {"A": {"Type": "T", "Properties": {"x": {"Fn::Sub": "${A.Arn}"}}}}}
    assert cycle_problems(template) == ["dependency cycle A -> A"]


# --- tests: cfn-lint on what CloudFormation receives -----------------------------


def test_transformed_templates_are_cfn_lint_clean(tmp_path):
    """The source is linted by test_template.py; this is what `sam deploy` submits."""
    paths = []
    for variant, parameters in sorted(VARIANTS.items()):
        path = tmp_path / f"transformed-{variant}.json"
        path.write_text(json.dumps(transformed(**parameters), indent=1))
        paths.append(str(path))
    done = subprocess.run([str(CFN_LINT), *paths], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


# --- tests: physical names -------------------------------------------------------


def test_dev_and_prod_stacks_can_share_an_account():
    problems = shared_name_problems()
    assert not problems, "\n".join(problems)


def test_a_fixed_schedule_name_is_caught():
    """SAM names a ScheduleV2 after its logical ID unless told otherwise."""

    def sam_default_name(template):
        del template["Resources"]["ReconcilerFunction"]["Properties"]["Events"]["Schedule"]["Properties"]["Name"]

    problems = shared_name_problems(lambda **p: mutated(sam_default_name, **p))
    assert any("ReconcilerFunctionSchedule" in p for p in problems), problems


def test_a_log_group_name_without_the_stack_is_caught():
    def fixed(template):
        template["Resources"]["WebhookFunctionLogGroup"]["Properties"]["LogGroupName"] = "/aws/lambda/webhook"

    assert any("WebhookFunctionLogGroup" in p for p in shared_name_problems(lambda **p: mutated(fixed, **p)))


def test_every_resource_type_is_known_to_the_name_check(cfn):
    unknown = {r["Type"] for r in cfn["Resources"].values()} - NAME_PROPERTIES.keys() - UNNAMED_TYPES
    assert unknown == set(), "decide which property names these in the account: add them to NAME_PROPERTIES or UNNAMED_TYPES"


# --- tests: parameters and the env contract --------------------------------------


def _env(template, name):
    return template["Resources"][name]["Properties"]["Environment"]["Variables"]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_public_base_url_is_the_custom_domain_or_empty(variant):
    params = VARIANTS[variant]
    cfn = transformed(**params)
    stack = Stack(cfn, "checkout-best-dev", params)
    expected = f"https://{params['DomainName']}/" if params.get("DomainName") else ""
    for name in of_type(cfn, "AWS::Lambda::Function"):
        assert stack.resolve(_env(cfn, name)["PUBLIC_BASE_URL"]) == expected, name
        assert "HttpApi" not in references(_env(cfn, name)), name


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_custom_domain_resources_and_outputs(variant):
    params = VARIANTS[variant]
    cfn = transformed(**params)
    stack = Stack(cfn, "checkout-best-dev", params)
    existing = {r["Type"] for r in cfn["Resources"].values() if stack.exists(r)}
    custom = {"AWS::ApiGatewayV2::DomainName", "AWS::ApiGatewayV2::ApiMapping", "AWS::Route53::RecordSet"}
    body = cfn["Resources"]["HttpApi"]["Properties"]["Body"]
    disabled = stack.truth(body["servers"][0]["x-amazon-apigateway-endpoint-configuration"]["disableExecuteApiEndpoint"])
    api_url = stack.resolve(cfn["Outputs"]["ApiUrl"]["Value"])
    if params.get("DomainName"):
        assert custom <= existing
        domain = next(r for r in of_type(cfn, "AWS::ApiGatewayV2::DomainName").values())["Properties"]
        (config,) = domain["DomainNameConfigurations"]
        assert (config["EndpointType"], config["SecurityPolicy"]) == ("REGIONAL", "TLS_1_2")
        assert stack.resolve(config["CertificateArn"]) == params["CertificateArn"]
        assert sorted(r["Properties"]["Type"] for r in of_type(cfn, "AWS::Route53::RecordSet").values()) == ["A", "AAAA"]
        (mapping,) = of_type(cfn, "AWS::ApiGatewayV2::ApiMapping").values()
        assert cfn["Resources"][_ref(mapping["Properties"]["Stage"])]["Properties"]["StageName"] == "$default"
        assert disabled is True
        assert api_url == "https://secure.checkout.best/"
        assert stack.resolve(cfn["Outputs"]["WebhookUrl"]["Value"]) == "https://secure.checkout.best/webhook/stripe"
    else:
        assert not custom & existing
        assert disabled is False
        assert api_url == f"https://checkout-best-dev-HttpApi-GENERATED.execute-api.{REGION}.amazonaws.com/"


def test_records_only_with_a_hosted_zone():
    params = {**DOMAIN_PARAMS, "HostedZoneId": ""}
    cfn = transformed(**params)
    stack = Stack(cfn, "checkout-best-dev", params)
    existing = {r["Type"] for r in cfn["Resources"].values() if stack.exists(r)}
    assert "AWS::ApiGatewayV2::DomainName" in existing and "AWS::Route53::RecordSet" not in existing


def _failed_assertions(cfn, params):
    stack = Stack(cfn, "checkout-best-dev", params)
    failed = []
    for rule in cfn.get("Rules", {}).values():
        if "RuleCondition" in rule and not stack.truth(rule["RuleCondition"]):
            continue
        failed += [a["AssertDescription"] for a in rule["Assertions"] if not stack.truth(a["Assert"])]
    return failed


def test_a_domain_without_certificate_is_refused_at_deploy_time():
    without = {**DOMAIN_PARAMS, "CertificateArn": ""}
    failed = _failed_assertions(transformed(**without), without)
    assert len(failed) == 1 and "CertificateArn is required" in failed[0], failed
    for params in VARIANTS.values():
        assert _failed_assertions(transformed(**params), params) == []


def test_a_hosted_zone_without_domain_is_refused_at_deploy_time():
    params = {"HostedZoneId": DOMAIN_PARAMS["HostedZoneId"]}
    assert _failed_assertions(transformed(**params), params) != []


@pytest.mark.parametrize("architecture", ["arm64", "x86_64"])
def test_architecture_is_a_parameter_the_translator_accepts(architecture):
    cfn = transformed(Architecture=architecture)
    assert cfn["Parameters"]["Architecture"]["Default"] == "arm64"
    assert set(cfn["Parameters"]["Architecture"]["AllowedValues"]) == {"arm64", "x86_64"}
    stack = Stack(cfn, "checkout-best-dev", {"Architecture": architecture})
    for name, fn in of_type(cfn, "AWS::Lambda::Function").items():
        assert stack.resolve(fn["Properties"]["Architectures"]) == [architecture], name


def test_alarm_email_is_required_and_checked():
    spec = source()["Parameters"]["AlarmEmail"]
    assert "Default" not in spec, "without a value CloudFormation must refuse the stack"
    pattern = re.compile(spec["AllowedPattern"])
    assert pattern.fullmatch("ops@checkout.best")
    for wrong in ("", "REPLACE_ME", "ops", "ops@", "ops@checkout", "a b@checkout.best"):
        assert not pattern.fullmatch(wrong), wrong
    assert "AlarmEmail" in spec["ConstraintDescription"] and "e-mail" in spec["ConstraintDescription"]


# --- tests: operations -------------------------------------------------------


def test_every_function_has_json_logs_with_retention_and_alarms(cfn):
    problems = function_problems(cfn)
    assert not problems, "\n".join(problems)


def test_a_function_without_its_log_group_is_caught():
    def drop(template):
        del template["Resources"]["WebhookFunctionLogGroup"]
        del template["Resources"]["WebhookFunction"]["Properties"]["LoggingConfig"]

    assert function_problems(mutated(drop)) == [
        "WebhookFunction: LoggingConfig.LogFormat is not JSON",
        "WebhookFunction: LoggingConfig.LogGroup is not a log group of this stack",
    ]


def test_a_log_group_without_retention_and_a_missing_alarm_are_caught():
    def drop(template):
        del template["Resources"]["ReconcilerFunctionLogGroup"]["Properties"]["RetentionInDays"]
        del template["Resources"]["ReconcilerFunctionThrottlesAlarm"]

    assert function_problems(mutated(drop)) == [
        "ReconcilerFunction: its log group ReconcilerFunctionLogGroup keeps logs forever (no RetentionInDays)",
        "ReconcilerFunction: no Throttles alarm",
    ]


def test_access_logs_are_json_by_route_without_paths_or_queries(cfn):
    problems = access_log_problems(cfn)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("field", ['"path":"$context.path"', '"q":"$request.querystring.sig"'])
def test_an_access_log_with_the_path_or_a_query_is_caught(field):
    def leak(template):
        settings = template["Resources"]["HttpApi"]["Properties"]["AccessLogSettings"]
        settings["Format"] = settings["Format"].rstrip("}") + "," + field + "}"

    assert len(access_log_problems(mutated(leak))) == 1


def test_the_reconciler_schedule_retries_and_dead_letters(cfn):
    problems = schedule_problems(cfn)
    assert not problems, "\n".join(problems)


def test_a_schedule_without_retry_policy_or_dead_letter_queue_is_caught():
    def drop(template):
        props = template["Resources"]["ReconcilerFunction"]["Properties"]["Events"]["Schedule"]["Properties"]
        del props["RetryPolicy"], props["DeadLetterConfig"]

    assert len(schedule_problems(mutated(drop))) == 3


def test_the_alarm_topic_is_encrypted_with_a_key_cloudwatch_may_use(cfn):
    problems = topic_problems(cfn)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("key", [None, "alias/aws/sns"])
def test_an_unencrypted_or_aws_managed_topic_is_caught(key):
    def change(template):
        props = template["Resources"]["AlarmTopic"].setdefault("Properties", {})
        if key is None:
            del props["KmsMasterKeyId"]
        else:
            props["KmsMasterKeyId"] = key

    assert len(topic_problems(mutated(change))) == 1


def test_business_metric_alarms_and_namespace(cfn):
    problems = metrics_problems(cfn)
    assert not problems, "\n".join(problems)


def test_a_missing_business_alarm_is_caught():
    def drop(template):
        del template["Resources"]["ReconcilerPaidWithWebhookAlarm"]
        template["Globals"]["Function"]["Environment"]["Variables"]["METRICS_NAMESPACE"] = "CheckoutBest"

    problems = metrics_problems(mutated(drop))
    assert "no alarm on ReconcilerPaidWithWebhook (no dimensions) in" in " ".join(problems)
    assert any("METRICS_NAMESPACE is 'CheckoutBest'" in p for p in problems)


# --- secrets by purpose: who may read each one --------------------------------

# DESIGN.md §5: each secret readable only by the functions that need it.
SECRET_READERS = {
    "BmosAuthSecret": {
        "InternalStatusFunction",
        "ConnectLinksFunction",
        "CheckoutSessionsFunction",
        "OrderReviewFunction",
        "OrdersFunction",
        "WebhookSecretFunction",
        "DisconnectFunction",
    },
    "LinkSigningSecret": {"ConnectFunction", "ConnectLinksFunction"},
}
# The variable that names each secret to its readers.
SECRET_VARIABLES = {"BmosAuthSecret": "BMOS_AUTH_SECRET_ARN", "LinkSigningSecret": "LINK_SIGNING_SECRET_ARN"}


def _as_list(value):
    return value if isinstance(value, list) else [value]


# The AWS managed policies SAM attaches (logs, X-Ray); neither grants any
# secretsmanager action.
KNOWN_AWS_POLICIES = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
}


def _role_statements(template, function):
    """Every IAM statement a function's role carries: inline and managed."""
    role_name = _getatt_target(template["Resources"][function]["Properties"]["Role"])
    role = template["Resources"][role_name]["Properties"]
    documents = [p["PolicyDocument"] for p in role.get("Policies", [])]
    for arn in role.get("ManagedPolicyArns", []):
        if isinstance(arn, str) and arn in KNOWN_AWS_POLICIES:
            continue
        if _ref(arn) in template["Resources"]:
            documents.append(template["Resources"][_ref(arn)]["Properties"]["PolicyDocument"])
        else:
            # An AWS managed policy (or one of another stack): its contents are unknown here.
            documents.append({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*", "Unknown": arn}]})
    return [s for d in documents for s in _as_list(d["Statement"])]


def _reads_secrets(statement):
    actions = _as_list(statement.get("Action", []))
    return statement.get("Effect") == "Allow" and any(
        a == "*" or a.lower().startswith("secretsmanager:") and re.fullmatch(a.lower().replace("*", ".*"), "secretsmanager:getsecretvalue")
        for a in actions
    )


def secret_access_problems(template):
    """Only the listed functions may read each secret, on its ARN alone; the
    readers are told where it is, and no one else is."""
    problems = []
    for secret, readers in SECRET_READERS.items():
        resource = template["Resources"].get(secret)
        if not resource or resource["Type"] != "AWS::SecretsManager::Secret":
            problems.append(f"{secret}: not an AWS::SecretsManager::Secret of this stack")
        elif "GenerateSecretString" not in resource["Properties"]:
            problems.append(f"{secret}: no GenerateSecretString (a deploy would need a manual step)")
    for function in sorted(of_type(template, "AWS::Lambda::Function")):
        env = template["Resources"][function]["Properties"].get("Environment", {}).get("Variables", {})
        for statement in _role_statements(template, function):
            if not _reads_secrets(statement):
                continue
            for target in _as_list(statement.get("Resource", [])):
                secret = _ref(target)
                if secret not in SECRET_READERS:
                    problems.append(f"{function}: may read secrets on {target!r}, not one secret's ARN")
                elif function not in SECRET_READERS[secret]:
                    problems.append(f"{function}: may read {secret}, which it has no use for")
        for secret, readers in SECRET_READERS.items():
            variable = SECRET_VARIABLES[secret]
            granted = any(
                _reads_secrets(s) and {"Ref": secret} in _as_list(s.get("Resource", [])) for s in _role_statements(template, function)
            )
            if function in readers:
                if not granted:
                    problems.append(f"{function}: cannot read {secret}")
                if _ref(env.get(variable)) != secret:
                    problems.append(f"{function}: {variable} is not {{Ref: {secret}}}")
            elif variable in env:
                problems.append(f"{function}: has {variable} though it must not load {secret}")
        for legacy in ("INTERNAL_SECRET", "INTERNAL_SECRET_PARAMETER", "BMOS_AUTH_SECRET", "LINK_SIGNING_SECRET"):
            if legacy in env:
                problems.append(f"{function}: still has {legacy}")
        plain = env.get("ALLOW_PLAIN_SECRET_HEADER")
        if function in SECRET_READERS["BmosAuthSecret"] and _ref(plain) != "AllowPlainSecretHeader":
            problems.append(f"{function}: ALLOW_PLAIN_SECRET_HEADER is not {{Ref: AllowPlainSecretHeader}}")
    return problems


def test_only_the_functions_that_need_a_secret_may_read_it(cfn):
    assert secret_access_problems(cfn) == []


def test_the_public_functions_load_no_secret(cfn):
    for function in ("StatusFunction", "CheckoutFunction", "CreateIntentFunction", "WebhookFunction", "ReconcilerFunction"):
        env = _env(cfn, function)
        # No variable that names a secret (or an SSM parameter holding one),
        # so their cold start reads none and their config requires none.
        assert not any("SECRET" in name for name in env), (function, env)
        statements = _role_statements(cfn, function)
        assert not any(_reads_secrets(s) for s in statements), function
        assert not any("ssm:" in str(s.get("Action")) for s in statements), function


def test_a_public_function_given_a_secret_is_caught():
    def leak(template):
        template["Resources"]["StatusFunction"]["Properties"]["Policies"].insert(0, {"Ref": "ReadBmosAuthSecretPolicy"})

    assert any("StatusFunction: may read BmosAuthSecret" in p for p in secret_access_problems(mutated(leak)))


def test_a_wildcard_secret_grant_is_caught():
    def wildcard(template):
        template["Resources"]["WebhookFunction"]["Properties"]["Policies"].append(
            {"Statement": [{"Effect": "Allow", "Action": "secretsmanager:Get*", "Resource": "*"}]}
        )

    assert any("WebhookFunction: may read secrets on '*'" in p for p in secret_access_problems(mutated(wildcard)))


def test_a_reader_without_its_grant_or_variable_or_switch_is_caught():
    def broken(template):
        props = template["Resources"]["ConnectFunction"]["Properties"]
        props["Policies"] = [p for p in props["Policies"] if p != {"Ref": "ReadLinkSigningSecretPolicy"}]
        del template["Resources"]["OrdersFunction"]["Properties"]["Environment"]["Variables"]["ALLOW_PLAIN_SECRET_HEADER"]
        del template["Resources"]["DisconnectFunction"]["Properties"]["Environment"]["Variables"]["BMOS_AUTH_SECRET_ARN"]

    problems = secret_access_problems(mutated(broken))
    assert "ConnectFunction: cannot read LinkSigningSecret" in problems
    assert any(p.startswith("OrdersFunction: ALLOW_PLAIN_SECRET_HEADER") for p in problems)
    assert any(p.startswith("DisconnectFunction: BMOS_AUTH_SECRET_ARN") for p in problems)


@pytest.mark.parametrize("value", ["true", "false"])
def test_the_plain_header_switch_reaches_the_internal_api_functions(value):
    cfn = transformed(AllowPlainSecretHeader=value)
    stack = Stack(cfn, "checkout-best-dev", {"AllowPlainSecretHeader": value})
    for function in sorted(SECRET_READERS["BmosAuthSecret"]):
        assert stack.resolve(_env(cfn, function)["ALLOW_PLAIN_SECRET_HEADER"]) == value, function
    assert cfn["Parameters"]["AllowPlainSecretHeader"]["Default"] == "true", "the seed's BMOS keeps working"


def test_each_secret_is_named_after_its_stack():
    names = {
        stack.resolve(cfn["Resources"][s]["Properties"]["Name"])
        for env, (stack_name, params) in STACKS.items()
        for cfn in [transformed(**{**DOMAIN_PARAMS, **params})]
        for stack in [Stack(cfn, stack_name, {**DOMAIN_PARAMS, **params})]
        for s in SECRET_READERS
    }
    assert names == {
        "checkout-best-dev-bmos-auth",
        "checkout-best-dev-link-signing",
        "checkout-best-prod-bmos-auth",
        "checkout-best-prod-link-signing",
    }
