"""Crafted captures (issues #10 and #13): one unusable value never stops the output, nothing
it carried is allowed, and `--strict` turns any left-out value into a failing exit status."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from flowgen.cli import app
from flowgen.cli.policy import INCOMPLETE
from flowgen.policy.parsing import parse
from tests.conftest import DEMO

runner = CliRunner()


def _crafted(tmp_path: Path, *replacements: tuple[str, str]) -> Path:
    text = DEMO.read_text()
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / "crafted.jsonl"
    path.write_text(text)
    return path


def _ports(yaml_text: str) -> set[str]:
    return {
        p.port
        for policy in parse(yaml_text, "stdout").policies
        for spec in policy.specs
        for entry in (*(spec.ingress or ()), *(spec.egress or ()))
        for rule in entry.to_ports or ()
        for p in rule.ports
    }


@pytest.mark.parametrize(
    ("replacement", "note", "absent"),
    [
        pytest.param(
            ('"query":"api.stripe.com."', '"query":"*.wildcard.example.org."'),
            "unusable-value",
            "*.wildcard",
            id="wildcard-query",
        ),
        pytest.param(('"query":"api.stripe.com."', '"query":"."'), None, "matchName: .\n", id="root-query"),
        pytest.param(
            ('"topic":"orders"', '"topic":"orders; DROP"'), "unusable-value", "orders; DROP", id="kafka-topic"
        ),
        pytest.param(('"destination_port":5432', '"destination_port":0'), "invalid-port", 'port: "0"', id="port-0"),
        pytest.param(('"namespace":"data"', '"namespace":"Data_NS"'), "unusable-value", "Data_NS", id="namespace"),
    ],
)
def test_one_unusable_value_leaves_the_rest_written(
    tmp_path: Path, replacement: tuple[str, str], note: str | None, absent: str
) -> None:
    crafted = _crafted(tmp_path, replacement)
    result = runner.invoke(app, ["generate", "-A", "-i", str(crafted)])
    assert result.exit_code == 0, result.output
    assert absent not in result.stdout
    names = {p.name for p in parse(result.stdout, "stdout").policies}
    assert {"flowgen-api", "flowgen-frontend", "flowgen-orders"} <= names
    assert "0" not in _ports(result.stdout)
    if note:
        assert f"  {note} (" in result.stderr
        strict = runner.invoke(app, ["generate", "-A", "-i", str(crafted), "--strict"])
        assert strict.exit_code == INCOMPLETE
        assert "Incomplete: evidence was left out" in strict.stderr


def test_a_path_too_long_for_envoy_is_left_out_not_widened(tmp_path: Path) -> None:
    """Envoy refuses a regex whose RE2 program is over 100 (about 95 literal characters) and Cilium
    then enforces none of the endpoint's L7 rules: such a path is left out, never generalized."""
    long_path = "/api/v1/" + "very-long-segment/" * 6 + "end"
    crafted = _crafted(tmp_path, ("/api/v1/cart/items", long_path))
    result = runner.invoke(app, ["generate", "-n", "shop", "-i", str(crafted)])
    assert result.exit_code == 0, result.output
    assert "very-long-segment" not in result.stdout
    assert "over Envoy's limit of 100" in result.stderr
    api = next(p for p in parse(result.stdout, "stdout").policies if p.name == "flowgen-api")
    paths = [
        r.path for e in api.specs[0].ingress or () for p in e.to_ports or () for r in (p.rules.http if p.rules else ())
    ]
    assert paths and all(len(path) < 95 for path in paths)
