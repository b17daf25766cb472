"""The architecture stays visible: imports point downstream, generated code is fresh, the demo matches its script."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DEMO, ROOT

# The stage packages and the packages each may import besides itself (STYLE.md: imports point
# downstream). The tree is the pipeline: flows are ingested, aggregated into the graph, synthesized
# into policies, checked against the evidence; the command line composes them. `policy` is the
# policy language alone, independent of how policies are made.
#
#   ingest <- graph <- synth -> policy
#                  ^      ^       ^
#                  +--- check ----+ <- propose      cli <- every package
STAGES = {
    "ingest": set(),
    "graph": {"ingest"},
    "policy": set(),
    "synth": {"graph", "ingest", "policy"},
    "check": {"graph", "ingest", "policy", "synth"},
    "propose": {"graph", "ingest", "policy", "synth", "check"},
    "cli": {"ingest", "graph", "policy", "synth", "check", "propose"},
}
# Top-level modules every stage may use (and which use no stage).
BASE = {"errors", "cilium"}
# Generated protobuf code belongs to ingest: everything downstream reads Flow values.
PROTOBUF = "_pb"
# Modules that touch files, the network, the clock or the environment; every other one is pure.
IMPURE_MODULES = {
    "ingest.files",
    "ingest.dialing",
    "ingest.hubble",
    "graph.store",
    "graph.session",
    "graph.dask_engine",
    "graph.observed",
    "policy.folder",
    "policy.cluster",
    "propose.git",
    "propose.forge",
    "propose.workflow",
    "propose.window",
}
IMPURE = {"os", "socket", "subprocess", "time", "grpc", "pathlib", "sys", "platformdirs"}


def _modules() -> list[str]:
    """Every flowgen module as "package.module" (top-level modules as "module")."""
    found = []
    for path in sorted((ROOT / "flowgen").rglob("*.py")):
        parts = path.relative_to(ROOT / "flowgen").with_suffix("").parts
        if parts[0] == PROTOBUF or (parts[-1] == "__init__" and len(parts) == 1):
            continue
        found.append(".".join(parts))
    return found


def _imports(module: str) -> set[str]:
    path = ROOT / "flowgen" / Path(*module.split(".")).with_suffix(".py")
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize("module", _modules())
def test_imports_point_downstream(module: str) -> None:
    package = module.split(".", maxsplit=1)[0]
    used = {name.split(".")[1] for name in _imports(module) if name.startswith("flowgen.")}
    if package in BASE:
        assert used <= BASE - {package}
        return
    assert package in STAGES, f"{module} is in no stage package"
    allowed = {package} | STAGES[package] | BASE | ({PROTOBUF} if package == "ingest" else set())
    assert used <= allowed, f"{module} imports {sorted(used - allowed)}"


@pytest.mark.parametrize("module", [m for m in _modules() if "." in m and not m.startswith("cli.")])
def test_the_core_is_pure(module: str) -> None:
    if module in IMPURE_MODULES or module.endswith("__init__"):
        return
    assert not {name.split(".")[0] for name in _imports(module)} & IMPURE


def test_no_module_outgrows_its_file() -> None:
    """STYLE.md: split a module before it passes ~500 lines."""
    long = {m: n for m in _modules() if (n := _lines(m)) > 520}
    assert long == {}


def _lines(module: str) -> int:
    return len((ROOT / "flowgen" / Path(*module.split(".")).with_suffix(".py")).read_text().splitlines())


def test_demo_capture_matches_its_script() -> None:
    made = subprocess.run([sys.executable, str(ROOT / "fixtures" / "make_demo.py")], capture_output=True, check=True)
    assert made.stdout == DEMO.read_bytes(), "run `make fixtures` and review the diff"
