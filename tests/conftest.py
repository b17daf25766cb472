"""Shared test helpers: paths to the bundled fixtures and to ../shared references."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "fixtures" / "flows" / "demo.jsonl"
SAMPLES = ROOT.parent / "shared" / "ref" / "hubble-samples"


def sample_files() -> list[Path]:
    """Every real Hubble capture in ../shared/ref/hubble-samples (skips when absent)."""
    if not SAMPLES.is_dir():
        pytest.skip(f"reference samples not found at {SAMPLES} (../shared is not checked out beside this repo)")
    return sorted(p for p in SAMPLES.rglob("*") if p.suffix in (".json", ".jsonl"))
