"""bench/capture.py, the seeded capture generator of the benchmarks: reproducible, read by flowgen
without a malformed line, every workload in the graph, and repeated captures without duplicate uuids."""

from __future__ import annotations

import gzip
import re
import sys
from pathlib import Path

import pytest

from flowgen.graph.builder import GraphBuilder
from flowgen.graph.identity import PeerKind
from flowgen.ingest.jsonlines import JsonLineReader
from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))
import capture  # bench/ is not a package: found through sys.path


def test_the_same_seed_writes_the_same_capture(tmp_path: Path) -> None:
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    assert capture.write(first, workloads=30, seed=7) == capture.write(second, workloads=30, seed=7)
    assert first.read_bytes() == second.read_bytes()
    capture.write(tmp_path / "c.jsonl", workloads=30, seed=8)
    assert first.read_bytes() != (tmp_path / "c.jsonl").read_bytes()


@pytest.mark.parametrize("workloads", [1, 30, 300])
def test_every_workload_is_in_the_graph(tmp_path: Path, workloads: int) -> None:
    path = tmp_path / "capture.jsonl.gz"
    lines = capture.write(path, workloads=workloads, seed=1)
    reader, builder = JsonLineReader(), GraphBuilder()
    with gzip.open(path, "rb") as stream:
        builder.add_all(reader.read(stream, str(path)))
    assert reader.report.malformed == 0
    assert reader.report.lines == lines
    seen = {
        edge.destination.labels
        for edge in builder.graph().edges()
        if edge.destination.kind is PeerKind.WORKLOAD and edge.destination.namespace.startswith("team-")
    }
    # Every workload is probed by its node, so each is a destination.
    assert len(seen) == workloads


def test_a_repeated_capture_has_fresh_uuids_and_goes_on_in_time(tmp_path: Path) -> None:
    base, repeated = tmp_path / "base.jsonl.gz", tmp_path / "repeated.jsonl.gz"
    lines = capture.write(base, workloads=20, seed=3)
    assert capture.replicate(base, repeated, 3) == 3 * lines
    text = gzip.decompress(repeated.read_bytes()).decode()
    uuids = re.findall(r'"uuid":"([0-9a-f-]{36})"', text)
    assert len(uuids) == 3 * lines == len(set(uuids))
    slots = sorted(set(re.findall(r'"time":"(\d{4}-\d\d-\d\dT\d\d:\d)', text)))
    assert slots == ["2026-11-01T00:0", "2026-11-01T00:1", "2026-11-01T00:2"]
    times = re.findall(r'"flow":\{"time":"([^"]+)"', text)
    assert times == sorted(times)
