"""The local router (Cargo.toml, used by `cargo lambda watch`) serves exactly
the routes template.yaml deploys, each by the same function binary."""

import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "infra"))
import bootstrap  # noqa: E402
import yaml  # noqa: E402


def template_routes():
    with open(ROOT / "template.yaml") as f:
        template = yaml.load(f, Loader=bootstrap._CfnLoader)
    routes = set()
    for name, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        binary = resource["Metadata"]["BuildProperties"]["Binary"]
        for event in resource["Properties"].get("Events", {}).values():
            if event["Type"] == "HttpApi":
                routes.add((event["Properties"]["Method"], event["Properties"]["Path"], binary))
    return routes


def local_routes():
    with open(ROOT / "Cargo.toml", "rb") as f:
        router = tomllib.load(f)["workspace"]["metadata"]["lambda"]["watch"]["router"]
    return {(r["method"], path, r["function"]) for path, rs in router.items() for r in rs}


def test_local_router_matches_the_template():
    deployed, local = template_routes(), local_routes()
    assert deployed, "template.yaml declares no routes"
    assert deployed - local == set(), "deployed but not served locally"
    assert local - deployed == set(), "served locally but not deployed"


def test_every_binary_is_a_function_package():
    for _, _, binary in template_routes():
        assert (ROOT / "functions" / binary / "src" / "main.rs").is_file(), binary
