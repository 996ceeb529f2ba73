"""Budgets one caller cannot exhaust for everyone: every route of the HTTP
API has a throttle of its own on the $default stage (RouteSettings), sized by
who calls it. API Gateway throttles a route across all its callers, so a
flood on the customers' routes (a leaked checkout link in a loop) answers
429 there and leaves the webhooks' and BMOS's budgets untouched.

The local router does not enforce API Gateway throttles: this test over the
transformed template is what proves them (BENCHMARKS.md, "Isolation").
"""

import pytest

from test_transform import VARIANTS, mutated, transformed

WEBHOOK = {"ThrottlingRateLimit": 200, "ThrottlingBurstLimit": 400}
BMOS_HOT = {"ThrottlingRateLimit": 100, "ThrottlingBurstLimit": 200}
BMOS_READ = {"ThrottlingRateLimit": 50, "ThrottlingBurstLimit": 100}
ADMIN = {"ThrottlingRateLimit": 10, "ThrottlingBurstLimit": 20}
PAGE = {"ThrottlingRateLimit": 100, "ThrottlingBurstLimit": 200}
CUSTOMER = {"ThrottlingRateLimit": 50, "ThrottlingBurstLimit": 100}

BUDGETS = {
    "POST /webhook/stripe": WEBHOOK,
    "POST /webhook/stripe/{store_id}": WEBHOOK,
    "POST /api/internal/checkout-sessions": BMOS_HOT,
    "GET /api/internal/orders/{order_id}": BMOS_HOT,
    "GET /api/internal/stores/{store_id}/stripe-status": BMOS_READ,
    "POST /api/internal/stores/{store_id}/connect-links": ADMIN,
    "PUT /api/internal/stores/{store_id}/webhook-secret": ADMIN,
    "DELETE /api/internal/stores/{store_id}/stripe": ADMIN,
    "POST /api/internal/orders/{order_id}/review": ADMIN,
    "GET /checkout/{token}": PAGE,
    "POST /checkout/{token}/payment-intent": CUSTOMER,
    "GET /checkout/{token}/complete": CUSTOMER,
    "GET /stripe/status/{store_id}": CUSTOMER,
    "GET /stripe/connect": ADMIN,
    "POST /stripe/connect": ADMIN,
    "GET /stripe/success/{store_id}": ADMIN,
    "GET /stripe/webhook-secret": ADMIN,
    "POST /stripe/webhook-secret": ADMIN,
}


def api_routes(template):
    """Route keys of the HTTP API, from the OpenAPI body SAM generates."""
    body = template["Resources"]["HttpApi"]["Properties"]["Body"]
    return {f"{method.upper()} {path}" for path, ops in body["paths"].items() for method in ops}


def stage(template):
    [props] = [
        r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::ApiGatewayV2::Stage"
    ]
    return props


def budget_problems(template, budgets=BUDGETS):
    problems = []
    routes = api_routes(template)
    settings = stage(template).get("RouteSettings", {})
    for route in sorted(routes - set(settings)):
        problems.append(f"{route}: no budget of its own (it would share the default)")
    for route in sorted(set(settings) - routes):
        problems.append(f"{route}: a budget for a route the API does not have (CloudFormation refuses it)")
    for route in sorted(routes - set(budgets)):
        problems.append(f"{route}: not in the test's table of budgets")
    for route in sorted(set(settings) & set(budgets)):
        limits = {k: v for k, v in settings[route].items() if k.startswith("Throttling")}
        if limits != budgets[route]:
            problems.append(f"{route}: throttle {limits}, expected {budgets[route]}")
    return problems


@pytest.fixture(params=sorted(VARIANTS), ids=sorted(VARIANTS))
def cfn(request):
    return transformed(**VARIANTS[request.param])


def test_every_route_has_its_own_budget(cfn):
    assert budget_problems(cfn) == []


def test_webhooks_and_bmos_have_budgets_the_customer_routes_do_not_share(cfn):
    settings = stage(cfn)["RouteSettings"]
    customer = settings["POST /checkout/{token}/payment-intent"]
    # Separate keys are separate buckets; the webhook's is the largest
    # because Stripe sends several events per payment.
    assert settings["POST /webhook/stripe/{store_id}"]["ThrottlingRateLimit"] > customer["ThrottlingRateLimit"]
    assert all(v["ThrottlingBurstLimit"] >= v["ThrottlingRateLimit"] for v in settings.values())


def test_a_route_without_a_budget_is_caught():
    def drop(template):
        del template["Resources"]["HttpApi"]["Properties"]["RouteSettings"]["POST /webhook/stripe"]

    assert budget_problems(mutated(drop)) == ["POST /webhook/stripe: no budget of its own (it would share the default)"]


def test_a_changed_or_stray_budget_is_caught():
    def change(template):
        settings = template["Resources"]["HttpApi"]["Properties"]["RouteSettings"]
        settings["POST /checkout/{token}/payment-intent"]["ThrottlingRateLimit"] = 5000
        settings["POST /checkout/{token}/intents"] = dict(CUSTOMER)

    assert budget_problems(mutated(change)) == [
        "POST /checkout/{token}/intents: a budget for a route the API does not have (CloudFormation refuses it)",
        "POST /checkout/{token}/payment-intent: throttle {'ThrottlingRateLimit': 5000, 'ThrottlingBurstLimit': 100},"
        " expected {'ThrottlingRateLimit': 50, 'ThrottlingBurstLimit': 100}",
    ]


def test_a_new_route_missing_from_the_table_is_caught():
    table = {k: v for k, v in BUDGETS.items() if k != "GET /stripe/connect"}
    assert budget_problems(transformed(), table) == ["GET /stripe/connect: not in the test's table of budgets"]
