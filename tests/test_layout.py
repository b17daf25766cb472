"""The architecture stays visible: imports point downstream, generated code is fresh, the demo matches its script."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from tests.conftest import DEMO, ROOT

# Each module may import only the flowgen modules listed (STYLE.md: imports point downstream).
ALLOWED = {
    "errors": set(),
    "flow": set(),
    "timespec": {"errors"},
    "source": {"errors", "flow", "_pb"},
    "dialing": {"errors", "_pb"},
    "hubble": {"dialing", "errors", "flow", "source", "_pb"},
    "summary": {"flow"},
    "identity": {"flow"},
    "evidence": {"flow"},
    "folding": set(),
    "graph": {"evidence", "flow", "folding", "identity"},
    "diagram": {"evidence", "graph", "identity"},
    "store": {"errors", "graph"},
    "session": {"evidence", "flow", "graph", "hubble", "source", "store", "summary"},
    "policy": set(),
    "validation": {"policy"},
    "render": {"policy"},
    "parsing": {"errors", "policy"},
    "synth": {"baseline", "evidence", "graph", "identity", "notes", "patterns", "policy"},
    "notes": {"evidence", "graph", "policy"},
    "patterns": {"evidence", "folding", "graph", "identity", "policy"},
    "baseline": {"policy"},
    "engine": {"policy"},
    "verify": {"engine", "evidence", "flow", "folding", "graph", "identity", "policy"},
    "diff": {"baseline", "engine", "evidence", "graph", "policy", "render", "verify"},
    "report": {"diff", "notes", "verify"},
    "folder": {"errors", "parsing", "policy", "render"},
    "cluster": {"errors", "parsing", "policy"},
    "console": {"cluster", "errors", "graph", "source", "store", "timespec"},
    "policy_commands": {
        "notes",
        "policy",
        "cluster",
        "console",
        "diff",
        "engine",
        "errors",
        "folder",
        "graph",
        "render",
        "report",
        "synth",
        "timespec",
        "validation",
        "verify",
    },
    "cli": {
        "console",
        "diagram",
        "dialing",
        "errors",
        "graph",
        "hubble",
        "identity",
        "policy_commands",
        "session",
        "source",
        "store",
        "summary",
        "timespec",
    },
}
# The pure core touches no network, files, clock or environment.
IMPURE = {"os", "socket", "subprocess", "time", "grpc", "pathlib", "sys"}
PURE = {
    "folding",
    "notes",
    "patterns",
    "baseline",
    "flow",
    "summary",
    "errors",
    "identity",
    "evidence",
    "graph",
    "diagram",
    "timespec",
    "policy",
    "validation",
    "render",
    "parsing",
    "synth",
    "engine",
    "verify",
    "diff",
    "report",
}


def _imports(module: str) -> set[str]:
    tree = ast.parse((ROOT / "flowgen" / f"{module}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize("module", sorted(ALLOWED))
def test_imports_point_downstream(module: str) -> None:
    used = {name.split(".")[1] for name in _imports(module) if name.startswith("flowgen.")}
    assert used <= ALLOWED[module]
    if module in PURE:
        assert not {name.split(".")[0] for name in _imports(module)} & IMPURE


def test_every_module_is_placed() -> None:
    modules = {p.stem for p in (ROOT / "flowgen").glob("*.py")} - {"__init__"}
    assert modules == set(ALLOWED)


def test_demo_capture_matches_its_script() -> None:
    made = subprocess.run([sys.executable, str(ROOT / "fixtures" / "make_demo.py")], capture_output=True, check=True)
    assert made.stdout == DEMO.read_bytes(), "run `make fixtures` and review the diff"
