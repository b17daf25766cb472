"""Observe benchmark: `flowgen observe --input-file` (read, aggregate, store) on 1M and 10M flows.

    python bench/aggregate.py --write docs/performance.md   (make bench)

It writes reproducible gzip captures (seeded, the generator of bench/ingest.py,
continuing in time) under bench/data/ if they are not there yet, then runs the
whole `observe` command on each in its own process and records the rate, the
peak RSS, the graph's size and the store file's size. Memory should follow the
number of distinct edges, not the number of flows: the 10M row should need about
the same memory as the 1M row.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ingest import generate
from report import measured, peak_rss_mib, replace_section

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / "data"
HEADING = "## Observe from files: read, aggregate, store"


def _child(path: Path) -> None:
    from flowgen.cli import app  # noqa: PLC0415 - measured in the child only

    with tempfile.TemporaryDirectory() as store:
        started = time.perf_counter()
        try:
            app(["observe", "--input-file", str(path), "--store", store, "--output", "json"], standalone_mode=False)
        finally:
            seconds = time.perf_counter() - started
        sys.stdout.flush()
        size = sum(p.stat().st_size for p in Path(store).rglob("*.parquet"))
        print(json.dumps({"seconds": seconds, "rss_mib": peak_rss_mib(), "store_bytes": size}))


def _measure(path: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", str(path)], capture_output=True, text=True, check=True, cwd=ROOT
    )
    summary_line, result_line = done.stdout.strip().splitlines()[-2:]
    summary = json.loads(summary_line)
    result: dict[str, Any] = json.loads(result_line)
    result.update(flows=summary["flows"], edges=summary["edges"], evidence=sum(summary["evidence"].values()))
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,10000000", help="comma-separated capture sizes (lines)")
    parser.add_argument("--seed", type=int, default=20261126)
    parser.add_argument("--write", type=Path, help="write the results into this Markdown file")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child)
        return 0
    DATA.mkdir(parents=True, exist_ok=True)
    rows = []
    for lines in (int(n) for n in args.sizes.split(",")):
        path = DATA / f"observe-{lines}-{args.seed}.jsonl.gz"
        if not path.exists():
            print(f"writing {path} ...", file=sys.stderr)
            generate(path, lines, args.seed)
        r = _measure(path)
        rows.append(
            f"| {r['flows']:,} | {r['seconds']:.1f} | {r['flows'] / r['seconds']:,.0f} | {r['evidence']:,} | "
            f"{r['edges']:,} | {r['store_bytes'] / 2**20:.1f} | {r['rss_mib']:.0f} |"
        )
        print(rows[-1], file=sys.stderr)
    report = "\n".join(
        [
            HEADING,
            "",
            measured(", with `make bench`"),
            f"(`python bench/aggregate.py --sizes {args.sizes} --seed {args.seed}`).",
            "Each capture is gzip-compressed Hubble JSON from the seeded generator of bench/ingest.py",
            "(240 workloads in 12 namespaces, each talking to 2-6 fixed peers; 10% HTTP with ids in",
            "paths, so path folding is exercised); not committed.",
            "",
            "| flows | seconds | flows/s | evidence | edges | store MiB | peak RSS MiB |",
            "|---:|---:|---:|---:|---:|---:|---:|",
            *rows,
            "",
            "The whole `flowgen observe --input-file` command: gunzip, decode, select evidence,",
            "aggregate with pandas in batches, write the Parquet store. Peak memory follows the",
            "number of distinct edges (and hours), not the number of flows.",
        ]
    )
    print(report)
    if args.write:
        replace_section(args.write, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
