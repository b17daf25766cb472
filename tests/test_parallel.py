"""Observe in parallel (flowgen.graph.parallel): the shares' graphs add up to the single-process graph.

The split-build-combine steps run here in this process on every bundled capture, cut into
per-node files as Hubble exporters write them; tests/test_dask.py runs the same steps on a
real Dask LocalCluster through the command line.
"""

from __future__ import annotations

import subprocess
import sys
from array import array
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import orjson
import pandas as pd
import pytest

from flowgen.graph import frame as graph_frame
from flowgen.graph import pods
from flowgen.graph.builder import BuildOptions, GraphBuilder
from flowgen.graph.frame import Graph
from flowgen.graph.parallel import Clients, Filters, Links, Routes, add_reads, decode, encode, run_here, tree
from flowgen.graph.session import Observation, observe, tally
from flowgen.ingest.files import FileSource, read_files
from flowgen.ingest.flow import Flow
from flowgen.ingest.jsonlines import JsonLineReader
from tests.conftest import DEMO, ROOT

SCENARIOS = sorted((ROOT / "fixtures" / "flows" / "scenarios").glob("*.jsonl"))
CAPTURES = [DEMO, *SCENARIOS]


def per_node(capture: Path, folder: Path) -> list[str]:
    """The capture cut into one file per observing node (as per-node exporters write them),
    plus the lines without a flow (lost events, node status) in a file of their own; gzip for
    every other file, so both kinds are read."""
    import gzip  # noqa: PLC0415

    lines: dict[str, list[bytes]] = {}
    for line in capture.read_bytes().splitlines(keepends=True):
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            record = {}
        flow = record.get("flow", record) if isinstance(record, dict) else {}
        node = flow.get("node_name", "") if isinstance(flow, dict) else ""
        lines.setdefault(node or "other", []).append(line)
    paths = []
    for index, (node, chunk) in enumerate(sorted(lines.items())):
        path = folder / f"{index:02d}-{node.replace('/', '_')}.jsonl"
        data = b"".join(chunk)
        if index % 2:
            path = path.with_suffix(".jsonl.gz")
            data = gzip.compress(data)
        path.write_bytes(data)
        paths.append(str(path))
    return paths


def canonical(graph: Graph) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The graph's rows and pod sightings in one order, whatever order they were built in."""
    rows = graph.frame.sort_values(list(graph_frame.KEY), kind="stable").reset_index(drop=True)
    seen = graph.pods.sort_values(list(pods.KEY), kind="stable").reset_index(drop=True)
    return rows, seen


def assert_same_graph(left: Graph, right: Graph) -> None:
    left_rows, left_pods = canonical(left)
    right_rows, right_pods = canonical(right)
    pd.testing.assert_frame_equal(left_rows, right_rows)
    pd.testing.assert_frame_equal(left_pods, right_pods)


def single(paths: Sequence[str], filters: Filters, options: BuildOptions) -> tuple[Observation, FileSource]:
    """The single-process path on the same files (no store)."""
    session = Observation(GraphBuilder(options), namespaces=filters.namespaces, since=filters.since)
    source = FileSource(paths, JsonLineReader())
    observe(source, session)
    return session, source


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda path: path.stem)
@pytest.mark.parametrize("shares", [1, 3, 8])
def test_shares_add_up_to_the_single_process_graph(capture: Path, shares: int, tmp_path: Path) -> None:
    paths = per_node(capture, tmp_path)
    options = BuildOptions()
    session, source = single(paths, Filters(), options)
    reads, partial = run_here(paths, shares, Filters(), options)
    assert_same_graph(partial.graph, session.builder.graph())
    assert partial.report == session.builder.report
    counters, summary, report = add_reads(reads)
    ours = tally(
        counters,
        summary,
        partial.report,
        edges=partial.graph.edge_count(),
        read=report,
        inputs=tuple(paths),
        already_observed=0,
        store=None,
        checkpoint=None,
        stopped_by=None,
    )
    theirs = tally(
        session.counters,
        session.summary,
        session.builder.report,
        edges=session.builder.graph().edge_count(),
        read=source.report,
        inputs=tuple(paths),
        already_observed=0,
        store=None,
        checkpoint=None,
        stopped_by=None,
    )
    assert ours == theirs
    assert partial.graph.edges() == session.builder.graph().edges()


def test_filters_and_folding_hold_in_every_share(tmp_path: Path) -> None:
    """-n, --since and a low path-folding threshold give the same graph split or not."""
    paths = per_node(DEMO, tmp_path)
    flows = list(read_files([str(DEMO)]))
    times = sorted(flow.time for flow in flows if flow.time is not None)
    filters = Filters(namespaces=frozenset({"shop"}), since=times[len(times) // 3])
    options = BuildOptions(max_paths=2)
    session, _ = single(paths, filters, options)
    reads, partial = run_here(paths, 5, filters, options)
    assert sum(read.counters.before_since for read in reads) == session.counters.before_since > 0
    assert sum(read.summary.filtered_out for read in reads) == session.summary.filtered_out > 0
    assert sum(partial.report.folded.values()) == sum(session.builder.report.folded.values()) > 0
    assert_same_graph(partial.graph, session.builder.graph())


def test_a_client_and_its_dns_answers_are_one_group() -> None:
    """The DNS answer goes to the group of the client it answers, whichever side it is on."""
    flows = list(read_files([str(ROOT / "fixtures" / "flows" / "scenarios" / "dns-fqdn.jsonl")]))
    clients = Clients()
    answers = [f for f in flows if f.l7 is not None and f.l7.dns is not None and f.l7.dns.ips and f.is_reply]
    assert answers
    for answer in answers:
        requests = [f for f in flows if f.source.pod_name == answer.destination.pod_name and f.source.pod_name]
        assert requests
        assert {clients.of(flow)[0] for flow in requests} == {clients.of(answer)[0]}


def test_groups_that_shared_an_address_are_built_together() -> None:
    """A pod seen as itself at one end and as the world at the other, and a node seen as `host` and
    as `remote-node`: their groups are linked, whichever file said so; the rest is balanced."""
    first = Links(inside={("v1", 10), ("v2", 20)}, sizes=Counter({"v1": 5, "v2": 7, "v3": 100}))
    second = Links(
        inside={("v4", 20)}, outside=array("I", [10, 30]).tobytes(), sizes=Counter({"v4": 1, f"w{10 % 64}": 2})
    )
    routes = Routes([first, second], 2)
    assert routes.share("v1") == routes.share(f"w{10 % 64}")
    assert routes.share("v2") == routes.share("v4")
    # The biggest group alone on one share, the linked ones on the other.
    assert routes.share("v3") != routes.share("v1") == routes.share("v2")
    plan = routes.plan()
    assert sorted(group for groups in plan for group in groups) == sorted(["v1", "v2", "v3", "v4", "w10"])


def test_flows_cross_processes_unchanged() -> None:
    flows = list(read_files([str(DEMO)]))
    back = decode(encode(list(enumerate(flows))))
    assert [flow for _, flow in back] == flows
    assert [number for number, _ in back] == list(range(len(flows)))
    assert all(type(flow) is Flow for _, flow in back)


def test_a_tree_of_any_width_adds_everything(tmp_path: Path) -> None:
    paths = per_node(DEMO, tmp_path)
    _, whole = run_here(paths, 1, Filters(), BuildOptions())
    for shares in (2, 5, 6):
        _, partial = run_here(paths, shares, Filters(), BuildOptions())
        assert_same_graph(partial.graph, whole.graph)
    assert len(tree([]).graph) == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--engine", "dask"], "--engine dask reads files"),
        (["-i", "-", "--engine", "dask"], "not stdin"),
        (["-i", str(DEMO), "--workers", "2"], "apply to --engine dask"),
        (["-i", str(DEMO), "--engine", "dask", "--scheduler", "tcp://127.0.0.1:1", "--workers", "2"], "own workers"),
        (["-i", "no/such/*.jsonl.gz", "--engine", "dask"], "no file matches no/such/*.jsonl.gz"),
    ],
)
def test_engine_options_that_do_not_fit(args: list[str], message: str) -> None:
    done = subprocess.run(
        [str(Path(sys.executable).with_name("flowgen")), "observe", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode in (1, 2), done.stderr
    assert message in done.stderr


def test_a_glob_reads_every_match_in_order(tmp_path: Path) -> None:
    (tmp_path / "nested").mkdir()
    paths = per_node(DEMO, tmp_path / "nested")
    found = FileSource([f"{tmp_path}/**/*.jsonl*"]).paths
    assert found == tuple(sorted(paths))
