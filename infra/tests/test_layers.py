"""The modules of shared/ sit in layers, and imports only run downwards or
within a layer (issue 16): a use case may call the app context, the app
context may call an adapter, an adapter may use the domain, never the other
way round. So the domain reads without the AWS plumbing, the store without
the HTTP layer, and auth judges the bytes and headers it is given without
reading requests or the table. `test_module_graph.py` rules out cycles
within a layer; this rules out the wrong direction between them.

A new top-level module must be given its layer here: the check fails on a
module it does not know."""

from pathlib import Path

import pytest

from test_module_graph import ROOT, graph

LAYERS = [
    # Values valid by construction, and what every layer needs.
    ("foundation", {"error", "clock", "domain", "csp"}),
    # The outside world: settings, secrets, the table, KMS, Stripe, logs, metrics.
    ("adapters", {"config", "secrets", "vault", "store", "stripe", "telemetry", "metrics"}),
    # Verifying what callers present: signatures, links, tokens.
    ("auth", {"auth"}),
    # The app context, the HTTP helpers and the pages a function answers with.
    ("interface", {"app", "http", "pages"}),
    # What the functions do: take payments, hear Stripe, settle orders, admit BMOS.
    ("use cases", {"internal_api", "webhooks", "checkout", "reconcile", "abandoned", "replaced", "key_health"}),
    # Test support (feature `testing`): may build anything.
    ("test support", {"testing"}),
]


def rank_of(layers):
    return {module: rank for rank, (_, modules) in enumerate(layers) for module in modules}


def upward_imports(edges, layers):
    """(from, to) top-level modules where `from` imports a higher layer;
    and the top-level modules no layer names."""
    ranks = rank_of(layers)
    tops = {m[0] for m in edges if m}
    unplaced = sorted(tops - ranks.keys())
    wrong = set()
    for m, targets in edges.items():
        if not m or m[0] not in ranks:
            continue
        for t in targets:
            if t and t[0] in ranks and ranks[t[0]] > ranks[m[0]]:
                wrong.add(("::".join(m), "::".join(t)))
    return sorted(wrong), unplaced


def test_imports_run_down_the_layers_of_shared():
    wrong, unplaced = upward_imports(graph(ROOT / "shared" / "src"), LAYERS)
    assert not unplaced, f"top-level modules of shared/ with no layer in {__file__}: {unplaced}"
    assert not wrong, f"imports from a lower layer into a higher one: {wrong}"


def test_the_check_sees_an_upward_import(tmp_path):
    # Guards the check above from passing because it parsed nothing: the
    # app context holding a use case's type (how the tree once was).
    (tmp_path / "lib.rs").write_text("pub mod app;\npub mod webhooks;\npub mod store;\npub mod fresh;\n")
    (tmp_path / "app.rs").write_text("use crate::webhooks::WebhookMemory;\nuse crate::store::Store;\n")
    (tmp_path / "webhooks.rs").write_text("use crate::app::App;\npub struct WebhookMemory;\n")
    (tmp_path / "store.rs").write_text("pub struct Store;\n")
    (tmp_path / "fresh.rs").write_text("")
    wrong, unplaced = upward_imports(graph(tmp_path), LAYERS)
    assert wrong == [("app", "webhooks")]
    assert unplaced == ["fresh"]
