"""`observe --engine dask` on a real Dask LocalCluster (scheduler and worker processes on 127.0.0.1):
the store it writes holds the same graph as the single-process path on the same files."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from flowgen.graph.store import Store
from tests.conftest import DEMO, ROOT
from tests.test_parallel import assert_same_graph, per_node

pytest.importorskip("distributed", reason="Dask is an optional extra: pip install 'flowgen[dask]'")

sys.path.insert(0, str(ROOT / "bench"))
import capture  # bench/ is not a package: found through sys.path

FLOWGEN = str(Path(sys.executable).with_name("flowgen"))
# Fields that name where a run wrote; everything else in the summary must match.
WHERE = ("store", "checkpoint")


def observe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FLOWGEN, "observe", "-o", "json", *args], check=False, capture_output=True, text=True, timeout=300
    )


def summary(done: subprocess.CompletedProcess[str]) -> dict[str, object]:
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert isinstance(found, dict)
    return {key: value for key, value in found.items() if key not in WHERE}


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of exporter files: the demo per node, and a seeded bench capture of 60 workloads
    cut into four gzip files, in sub-folders (read through a ** pattern)."""
    root = tmp_path_factory.mktemp("archive")
    (root / "demo").mkdir()
    per_node(DEMO, root / "demo")
    whole = root / "bench.jsonl"
    capture.write(whole, workloads=60, lines=12_000, seed=5)
    lines = whole.read_bytes().splitlines(keepends=True)
    whole.unlink()
    (root / "bench").mkdir()
    quarter = len(lines) // 4 + 1
    for index in range(4):
        chunk = b"".join(lines[index * quarter : (index + 1) * quarter])
        (root / "bench" / f"part-{index}.jsonl.gz").write_bytes(gzip.compress(chunk, compresslevel=1))
    return root


def test_dask_gives_the_single_process_graph(archive: Path, tmp_path: Path) -> None:
    pattern = f"{archive}/**/*.jsonl*"
    single = summary(observe("-i", pattern, "--store", str(tmp_path / "single")))
    spread = summary(observe("-i", pattern, "--store", str(tmp_path / "dask"), "--engine", "dask", "--workers", "2"))
    assert spread == single
    assert single["flows"] > 12_000
    assert len(single["inputs"]) == 6
    assert_same_graph(Store(tmp_path / "dask").load().graph, Store(tmp_path / "single").load().graph)
    # The run recorded what it took: reading the archive again adds nothing.
    again = summary(observe("-i", pattern, "--store", str(tmp_path / "dask"), "--engine", "dask", "--workers", "1"))
    assert again["lines"] == 0
    assert again["already_observed"] == single["lines"]
    assert len(Store(tmp_path / "dask").files()) == 1


def test_filters_and_a_malformed_line(archive: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"flow": {"time": 7}}\nnot json\n' + DEMO.read_bytes()[:2000].rsplit(b"\n", 1)[0] + b"\n")
    args = ["-i", f"{archive}/demo/*", "-i", str(bad), "-n", "shop", "--since", "2026-11-20T09:10:00Z"]
    single = summary(observe(*args, "--store", str(tmp_path / "single")))
    spread = summary(observe(*args, "--store", str(tmp_path / "dask"), "--engine", "dask", "--workers", "2"))
    assert spread == single
    assert single["malformed"] == 1
    assert "bad.jsonl line 2" in str(single["malformed_examples"])
    assert single["filtered_out"] > 0
    assert_same_graph(Store(tmp_path / "dask").load().graph, Store(tmp_path / "single").load().graph)


def test_a_file_with_no_flow_is_an_error_and_nothing_is_written(tmp_path: Path) -> None:
    junk = tmp_path / "junk.jsonl"
    junk.write_text("not json\n" * 30)
    done = subprocess.run(
        [FLOWGEN, "observe", "-i", str(junk), "--engine", "dask", "--workers", "1", "--store", str(tmp_path / "s")],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1
    assert "no Hubble flow in" in done.stderr
    assert not Store(tmp_path / "s").files()


def test_a_running_scheduler(archive: Path, tmp_path: Path) -> None:
    """--scheduler: the run goes to a cluster flowgen did not start (here one on 127.0.0.1 with a
    worker process), and gives the single-process graph."""
    from distributed import LocalCluster  # noqa: PLC0415

    pattern = f"{archive}/demo/*"
    single = summary(observe("-i", pattern, "--store", str(tmp_path / "single")))
    with LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        address = cluster.scheduler_address
        spread = summary(
            observe("-i", pattern, "--store", str(tmp_path / "dask"), "--engine", "dask", "--scheduler", address)
        )
    assert spread == single
    assert_same_graph(Store(tmp_path / "dask").load().graph, Store(tmp_path / "single").load().graph)
