"""Dask benchmark: `observe --engine dask` on an archive of exporter files, 1 and 2 workers, beside the single path.

    python bench/scaling.py --write docs/performance.md   (make bench)

The archive is the 1M-line demo-mix capture (bench/capture.py) cut the way Hubble
exporters write it: one series of files per node, a new gzip file every
--rotate lines. It is written once under bench/data/ (git-ignored). Each
measurement is a separate `flowgen observe` into a fresh store, timed from the
outside (wall clock, including the local cluster's start); the summaries of all
runs must be equal (the same flows, evidence and edges), or the benchmark fails.
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any

import capture
import orjson
from report import measured, publish

ROOT = Path(__file__).resolve().parent.parent
DATA = capture.DATA
HEADING = "## Observe on Dask: an archive of exporter files"
FLOWGEN = str(Path(sys.executable).with_name("flowgen"))
# Where each run wrote: the only fields of the summaries that may differ.
WHERE = ("store", "checkpoint")


def archive(lines: int, seed: int, rotate: int) -> Path:
    """The capture cut into per-node gzip files of `rotate` lines (written once)."""
    folder = DATA / f"archive-{lines}-{seed}-{rotate}"
    if folder.is_dir():
        return folder
    source = capture.demo_mix(lines, seed)
    partial = folder.with_name("partial-" + folder.name)
    partial.mkdir(parents=True, exist_ok=True)
    print(f"writing {folder} ...", file=sys.stderr)
    writing: dict[str, tuple[IO[bytes], int, int]] = {}
    with ExitStack() as stack, gzip.open(source, "rb") as stream:
        for line in stream:
            record = orjson.loads(line)
            node = str(record.get("node_name") or record.get("flow", {}).get("node_name") or "none")
            node = node.replace("/", "_")
            out, count, part = writing.get(node, (None, 0, -1))
            if out is None or count >= rotate:
                if out is not None:
                    out.close()
                part, count = part + 1, 0
                (partial / node).mkdir(exist_ok=True)
                path = partial / node / f"{part:04d}.jsonl.gz"
                out = stack.enter_context(gzip.open(path, "wb", compresslevel=1))
            out.write(line)
            writing[node] = (out, count + 1, part)
    partial.rename(folder)
    return folder


def _observe(pattern: str, *engine: str) -> tuple[float, dict[str, Any]]:
    with tempfile.TemporaryDirectory(dir=DATA) as store:
        started = time.perf_counter()
        done = subprocess.run(
            [FLOWGEN, "observe", "-i", pattern, "--store", store, "-o", "json", *engine],
            capture_output=True,
            text=True,
            check=True,
        )
        seconds = time.perf_counter() - started
    summary = {k: v for k, v in json.loads(done.stdout).items() if k not in WHERE}
    return seconds, summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--rotate", type=int, default=125_000, help="lines per exporter file")
    parser.add_argument("--seed", type=int, default=20261126)
    parser.add_argument("--write", type=Path, help="write the results into this Markdown file")
    args = parser.parse_args()
    DATA.mkdir(parents=True, exist_ok=True)
    folder = archive(args.lines, args.seed, args.rotate)
    pattern = f"{folder}/**/*.jsonl.gz"
    files = sorted(folder.rglob("*.jsonl.gz"))
    nodes = len(list(folder.iterdir()))
    runs = [
        ("single process (`--engine single`)", ()),
        ("Dask, 1 worker (`--engine dask --workers 1`)", ("--engine", "dask", "--workers", "1")),
        ("Dask, 2 workers (`--engine dask --workers 2`)", ("--engine", "dask", "--workers", "2")),
    ]
    results = []
    for name, engine in runs:
        seconds, summary = _observe(pattern, *engine)
        results.append((name, seconds, summary))
        print(f"{name}: {seconds:.1f} s", file=sys.stderr)
    first = {key: value for key, value in results[0][2].items() if key != "repeated"}
    for name, _, summary in results[1:]:
        if {key: value for key, value in summary.items() if key != "repeated"} != first:
            raise SystemExit(f"{name} summarized the archive differently from the single process")
    one_worker = results[1][1]
    rows = [
        f"| {name} | {summary['flows']:,} | {summary['repeated']:,} | {seconds:.1f} | "
        f"{summary['flows'] / seconds:,.0f} | {results[0][1] / seconds:.2f}x | {one_worker / seconds:.2f}x |"
        for name, seconds, summary in results
    ]
    return publish(
        [
            HEADING,
            "",
            measured(", with `make bench`"),
            f"(`python bench/scaling.py --lines {args.lines} --rotate {args.rotate} --seed {args.seed}`).",
            f"The archive: the {args.lines:,}-line demo-mix capture cut as per-node exporters write it, a new",
            f"gzip file every {args.rotate:,} lines: {len(files)} files in {nodes} node folders, read",
            "through one `--input-file` pattern. Each run is a whole `flowgen observe` into a fresh store, timed",
            "from outside (the local cluster's start included); all runs summarized the archive the same way",
            "but for `repeated` (sightings of a connection already counted; see docs/scaling.md).",
            "",
            "| engine | flows | repeated | seconds | flows/s | vs single | vs 1 worker |",
            "|---|---:|---:|---:|---:|---:|---:|",
            *rows,
            "",
            "The Dask engine moves every kept flow between processes once (msgpack, zlib) and starts",
            "a cluster, so one worker is slower than the single process; the second worker is the gain.",
        ],
        args.write,
    )


if __name__ == "__main__":
    sys.exit(main())
