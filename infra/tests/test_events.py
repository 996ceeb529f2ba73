"""events/ holds a sample API Gateway (HTTP API v2) event for every route in
template.yaml, plus the reconciler's EventBridge schedule event: the files
`sam local invoke` and the handler tests use."""

import json
import re
from pathlib import Path

from test_routes import ROOT, template_routes

EVENTS = sorted((ROOT / "events").glob("*.json"))


def load(path):
    return json.loads(path.read_text())


def test_every_route_has_a_sample_event():
    covered = {load(p).get("routeKey") for p in EVENTS}
    missing = sorted(f"{method} {path}" for method, path, _ in template_routes() if f"{method} {path}" not in covered)
    assert not missing, f"no sample event for: {missing}"


def test_every_http_event_names_a_real_route_and_matches_its_path():
    routes = {f"{method} {path}" for method, path, _ in template_routes()}
    for path in EVENTS:
        event = load(path)
        if "routeKey" not in event:
            continue
        assert event["version"] == "2.0", path.name
        assert event["routeKey"] in routes, f"{path.name}: {event['routeKey']}"
        method, route = event["routeKey"].split(" ", 1)
        assert event["requestContext"]["http"]["method"] == method, path.name
        pattern = "^" + re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", re.escape(route)) + "$"
        assert re.match(pattern, event["rawPath"]), f"{path.name}: {event['rawPath']} vs {route}"


def test_the_schedule_has_its_event():
    assert any(load(p).get("detail-type") == "Scheduled Event" for p in EVENTS)
