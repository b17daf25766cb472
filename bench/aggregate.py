"""Observe benchmark: file -> graph (`flowgen observe --input-file`) on 1M and 10M flows, beside orjson alone.

    python bench/aggregate.py --write docs/performance.md   (make bench)

It writes reproducible captures with the demo's mix (bench/capture.py: seeded,
240 workloads; gzip, and plain for the sizes in --plain) under bench/data/ if
they are not there yet, then on each file runs, each in its own process (so
peak RSS is that measurement's alone):

- orjson: read the same lines (gunzip included) and orjson.loads each one, the
  floor a Python reader of JSON lines cannot beat;
- observe: the whole `observe` command into a fresh store: read, decode, select
  evidence, aggregate, write the Parquet store; its rate, peak RSS, the graph's
  size and the store's size.

Memory should follow the number of distinct edges, not the number of flows: the
10M row should need about the same memory as the 1M row.
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import capture
import orjson
from report import measured, peak_rss_mib, publish

ROOT = Path(__file__).resolve().parent.parent
DATA = capture.DATA
HEADING = "## Observe from files: read, aggregate, store"


def _child(path: Path, mode: str) -> None:
    if mode == "orjson":
        count = 0
        loads = orjson.loads
        started = time.perf_counter()
        with gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb") as stream:
            for line in stream:
                loads(line)
                count += 1
        seconds = time.perf_counter() - started
        print(json.dumps({"seconds": seconds, "rss_mib": peak_rss_mib(), "lines": count}))
        return
    from flowgen.cli import app  # noqa: PLC0415 - measured in the child only

    with tempfile.TemporaryDirectory(dir=DATA) as store:
        started = time.perf_counter()
        try:
            app(["observe", "--input-file", str(path), "--store", store, "--output", "json"], standalone_mode=False)
        finally:
            seconds = time.perf_counter() - started
        sys.stdout.flush()
        size = sum(p.stat().st_size for p in Path(store).rglob("*.parquet"))
        print(json.dumps({"seconds": seconds, "rss_mib": peak_rss_mib(), "store_bytes": size}))


def _run(path: Path, mode: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", str(path), "--mode", mode],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return done.stdout.strip().splitlines()


def _measure(path: Path) -> dict[str, Any]:
    floor: dict[str, Any] = json.loads(_run(path, "orjson")[-1])
    summary_line, result_line = _run(path, "observe")[-2:]
    summary = json.loads(summary_line)
    result: dict[str, Any] = json.loads(result_line)
    result.update(flows=summary["flows"], edges=summary["edges"], evidence=sum(summary["evidence"].values()))
    result.update(orjson_rate=floor["lines"] / floor["seconds"], orjson_rss_mib=floor["rss_mib"])
    result.update(format="gzip" if path.suffix == ".gz" else "plain", file_bytes=path.stat().st_size)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,10000000", help="comma-separated capture sizes (lines), gzip")
    parser.add_argument("--plain", default="1000000", help="comma-separated sizes also measured uncompressed")
    parser.add_argument("--seed", type=int, default=20261126)
    parser.add_argument("--json", type=Path, help="also write the rows as JSON (for bench/plot.py)")
    parser.add_argument("--write", type=Path, help="write the results into this Markdown file")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=["orjson", "observe"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.mode)
        return 0
    DATA.mkdir(parents=True, exist_ok=True)
    plan = [(int(n), True) for n in args.plain.split(",") if n] + [(int(n), False) for n in args.sizes.split(",")]
    rows, results = [], []
    for lines, plain in plan:
        r = _measure(capture.demo_mix(lines, args.seed, plain=plain))
        results.append(r)
        rate = r["flows"] / r["seconds"]
        per_million = r["store_bytes"] / 2**20 / (r["flows"] / 1e6)
        rows.append(
            f"| {r['flows']:,} | {r['format']} | {r['file_bytes'] / 2**20:,.0f} | {r['seconds']:.1f} | {rate:,.0f} | "
            f"{r['orjson_rate']:,.0f} | {rate / r['orjson_rate']:.0%} | {r['evidence']:,} | {r['edges']:,} | "
            f"{r['store_bytes'] / 2**20:.1f} | {per_million:.2f} | {r['rss_mib']:.0f} |"
        )
        print(rows[-1], file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return publish(
        [
            HEADING,
            "",
            measured(", with `make bench`"),
            f"(`python bench/aggregate.py --sizes {args.sizes} --plain {args.plain} --seed {args.seed}`).",
            "Each capture is Hubble JSON with the demo's mix from bench/capture.py (240 workloads in skewed",
            "namespaces: probes, DNS, HTTP with headers and ids in paths, Kafka, PostgreSQL, outside APIs;",
            "every connection as its verdict, traces at both ends, L7 records and the reply); the 10M capture",
            "is the 1M one (four minutes of traffic) repeated every ten minutes with fresh uuids, so it",
            "spans two hours. Not committed.",
            "",
            "| flows | file | MiB | seconds | flows/s | orjson flows/s | vs orjson | evidence | edges | store MiB "
            "| store MiB per M flows | peak RSS MiB |",
            "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            *rows,
            "",
            "`observe` is the whole `flowgen observe --input-file` command: gunzip, decode, select evidence,",
            "aggregate (a dict of rows, a pandas frame at each checkpoint), write the Parquet store. `orjson` reads",
            "the same lines (gunzip included) and only parses each into dicts. Peak memory follows the number",
            "of distinct edges (and hours), not the number of flows.",
        ],
        args.write,
    )


if __name__ == "__main__":
    sys.exit(main())
