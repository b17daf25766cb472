"""End-to-end outputs on the demo capture, held against reviewed golden files.

Regenerate with `make golden` (sets FLOWGEN_UPDATE_GOLDEN=1) and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flowgen.cli import app
from tests.conftest import DEMO, ROOT

EXPECTED = ROOT / "fixtures" / "expected" / "demo"
UPDATE = os.environ.get("FLOWGEN_UPDATE_GOLDEN") == "1"
runner = CliRunner()


def _check(name: str, produced: str) -> None:
    golden = EXPECTED / name
    if UPDATE:
        golden.write_text(produced)
    assert golden.exists(), f"{golden} is missing: run `make golden` and review it"
    assert produced == golden.read_text(), f"{name} changed: run `make golden` and review the diff"


@pytest.mark.parametrize(
    ("name", "args"),
    [
        pytest.param("graph.txt", ["--format", "table"], id="table"),
        pytest.param("graph.mmd", ["--format", "mermaid"], id="mermaid"),
        pytest.param("graph.dot", ["--format", "dot"], id="dot"),
        pytest.param("graph.json", ["--format", "json"], id="json"),
        pytest.param("graph.csv", ["--format", "csv"], id="csv"),
    ],
)
def test_demo_graph(name: str, args: list[str]) -> None:
    result = runner.invoke(app, ["graph", "--input-file", str(DEMO), *args])
    assert result.exit_code == 0, result.output
    _check(name, result.stdout)


def test_store_and_files_give_the_same_graph(tmp_path: Path) -> None:
    store = tmp_path / "store"
    observed = runner.invoke(app, ["observe", "-i", str(DEMO), "--store", str(store)])
    assert observed.exit_code == 0, observed.output
    from_store = runner.invoke(app, ["graph", "--store", str(store), "--format", "csv"])
    assert from_store.stdout == (EXPECTED / "graph.csv").read_text()
