"""The store keeps every checkpoint: atomic writes, merging runs, concurrent writers, killed writers."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flowgen.errors import StoreError
from flowgen.graph.builder import GraphBuilder
from flowgen.graph.frame import Graph
from flowgen.graph.store import Store, new_run_id
from flowgen.ingest.files import read_files
from flowgen.ingest.jsonlines import JsonLineReader
from tests.conftest import DEMO, ROOT, pod, tcp_flow

FRONTEND = pod("shop", "frontend")
API = pod("shop", "api")


def _demo_graph() -> Graph:
    builder = GraphBuilder()
    builder.add_all(read_files([str(DEMO)], JsonLineReader()))
    return builder.graph()


def test_round_trip_keeps_the_graph(tmp_path: Path) -> None:
    graph = _demo_graph()
    store = Store(tmp_path / "store")
    path = store.write_run("run-1", graph, {"source": "demo"})
    loaded = store.load()
    assert loaded.graph.edges() == graph.edges()
    assert [(r.run, r.meta["source"]) for r in loaded.runs] == [("run-1", "demo")]
    # Plain Parquet, readable without flowgen.
    assert pq.read_table(path).num_rows == len(graph)


def test_runs_add_up_and_checkpoints_replace(tmp_path: Path) -> None:
    store = Store(tmp_path)
    one = GraphBuilder()
    one.add(tcp_flow(FRONTEND, API, 8080))
    store.write_run("a", one.graph(), {})
    one.add(tcp_flow(FRONTEND, API, 8080, at=100, src_port=40001))
    store.write_run("a", one.graph(), {})  # a later checkpoint of the same run replaces it
    other = GraphBuilder()
    other.add(tcp_flow(FRONTEND, API, 8080, at=200, src_port=40002, node="other/node-x"))
    store.write_run("b", other.graph(), {})
    (edge,) = store.load().graph.edges()
    assert edge.flows == 3
    assert edge.nodes == ("other/node-x", "prod/node-a")


def test_since_reads_from_that_hour(tmp_path: Path) -> None:
    builder = GraphBuilder()
    early, late = tcp_flow(FRONTEND, API, 8080), tcp_flow(FRONTEND, API, 9090, at=3 * 3600)
    builder.add_all([early, late])
    store = Store(tmp_path)
    store.write_run("r", builder.graph(), {})
    assert late.time is not None
    found = store.load(since=late.time - timedelta(minutes=10)).graph.edges()
    assert [e.port for e in found] == [9090]


def test_left_overs_of_a_killed_writer_are_ignored(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.write_run("r", _demo_graph(), {})
    (tmp_path / "observations" / ".r.999.tmp").write_bytes(b"PAR1 half a file")
    loaded = store.load()
    assert loaded.problems == [] and len(loaded.runs) == 1


def test_unreadable_file_is_reported_not_fatal(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.write_run("good", _demo_graph(), {})
    bad = tmp_path / "observations" / "bad.parquet"
    bad.write_bytes(b"not parquet")
    loaded = store.load()
    assert [p for p, _ in loaded.problems] == [bad]
    assert len(loaded.runs) == 1


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.write_run("future", _demo_graph(), {"schema": 99})
    with pytest.raises(StoreError, match="newer flowgen"):
        store.load()


def test_unwritable_store_says_how_to_fix(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match=r"--store DIR"):
        Store(blocker / "store").write_run("r", _demo_graph(), {})


def test_run_ids_do_not_collide() -> None:
    from datetime import UTC, datetime  # noqa: PLC0415

    now = datetime(2026, 11, 20, tzinfo=UTC)
    ids = {new_run_id(now) for _ in range(50)}
    assert len(ids) == 50 and all(i.startswith("20261120T000000Z-") for i in ids)


_WRITER = textwrap.dedent(
    """
    import os, sys
    sys.path.insert(0, {root!r})
    from pathlib import Path
    from flowgen.graph.builder import GraphBuilder
    from flowgen.ingest.jsonlines import JsonLineReader
    from flowgen.ingest.files import read_files
    from flowgen.graph.store import Store
    builder = GraphBuilder()
    builder.add_all(read_files([{demo!r}], JsonLineReader()))
    store = Store(Path(sys.argv[1]))
    for n in range(int(sys.argv[3])):
        store.write_run(sys.argv[2], builder.graph(), {{"n": n}})
    if sys.argv[4] == "kill-mid-write":
        import pyarrow.parquet as pq
        real = pq.write_table
        def torn(table, where, **kwargs):
            where.write(b"PAR1 torn")
            where.flush()
            os.kill(os.getpid(), 9)
        pq.write_table = torn
        store.write_run(sys.argv[2], builder.graph(), {{"n": "never"}})
    """
).format(root=str(ROOT), demo=str(DEMO))


def _writer(store: Path, run: str, times: int, mode: str = "") -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", _WRITER, str(store), run, str(times), mode or "-"])


def test_two_concurrent_writers(tmp_path: Path) -> None:
    writers = [_writer(tmp_path, "one", 15), _writer(tmp_path, "two", 15)]
    assert [w.wait(timeout=120) for w in writers] == [0, 0]
    loaded = Store(tmp_path).load()
    assert sorted(r.run for r in loaded.runs) == ["one", "two"]
    single = _demo_graph().edges()
    both = loaded.graph.edges()
    assert [e.flows for e in both] == [2 * e.flows for e in single]


def test_killed_mid_write_keeps_the_last_checkpoint(tmp_path: Path) -> None:
    writer = _writer(tmp_path, "victim", 2, "kill-mid-write")
    assert writer.wait(timeout=120) == -9
    # A run writes its pods file first (flowgen.graph.store), so that is where the writer died.
    left = os.listdir(tmp_path / "observations") + os.listdir(tmp_path / "pods")
    assert left.count("victim.parquet") == 2 and any(name.endswith(".tmp") for name in left)
    loaded = Store(tmp_path).load()
    assert loaded.problems == []
    assert [r.meta["n"] for r in loaded.runs] == [1]
    assert loaded.graph.edges() == _demo_graph().edges()


def test_files_from_before_namespace_labels_still_load(tmp_path: Path) -> None:
    store = Store(tmp_path)
    frame = _demo_graph().frame.drop(columns=["src_nslabels", "dst_nslabels"])
    runs = tmp_path / "observations"
    runs.mkdir()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), runs / "old.parquet")
    loaded = store.load()
    assert loaded.problems == []
    assert all(e.source_namespace_labels == () for e in loaded.graph.edges())
