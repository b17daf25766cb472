"""Generate benchmark: `flowgen generate -A -d DIR` on graphs of 100 to 100,000 workloads.

    python bench/generate.py --workloads 100,1000,5000 --write docs/performance.md   (make bench)

For each size it writes a seeded capture with the demo's mix (bench/capture.py) and
observes it into a store under bench/data/ (both kept for the next run, not
committed), then runs the whole `generate` command from that store into a fresh
folder, in a process of its own (so its peak RSS is its own): load the evidence,
synthesize and validate the policies, write one file per policy and the
kustomization atomically. `--profile N` also runs pyinstrument on size N and prints
where the time went.
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

import capture
from report import measured, peak_rss_mib, publish

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / "data"
HEADING = "## Generate: policies for N workloads"


def _child(store: Path, profile: bool) -> None:
    from flowgen.cli import app  # noqa: PLC0415 - measured in the child only

    with tempfile.TemporaryDirectory(dir=DATA) as scratch:
        out = Path(scratch) / "policies"
        command = ["generate", "-A", "--store", str(store), "--output-dir", str(out)]
        profiler: Any = None
        if profile:
            from pyinstrument import Profiler  # noqa: PLC0415 - a dev dependency, only with --profile

            profiler = Profiler()
            profiler.start()
        started = time.perf_counter()
        code = app(command, standalone_mode=False)
        seconds = time.perf_counter() - started
        if profiler is not None:
            profiler.stop()
            print(profiler.output_text(color=False, show_all=False), file=sys.stderr)
        files = sum(1 for _ in out.iterdir())
    print(json.dumps({"seconds": seconds, "rss_mib": peak_rss_mib(), "files": files, "exit": code}))


def prepare(workloads: int, seed: int) -> tuple[Path, int]:
    """The store of the seeded capture of `workloads` workloads (made once), and its capture's lines."""
    path = DATA / f"workloads-{workloads}-{seed}.jsonl.gz"
    store = DATA / f"store-workloads-{workloads}-{seed}"
    lines_file = path.with_suffix(".lines")
    if not path.exists() or not lines_file.exists():
        print(f"writing {path} ...", file=sys.stderr)
        lines_file.write_text(str(capture.workloads_capture(path, workloads, seed)))
    if not store.exists():
        print(f"observing it into {store} ...", file=sys.stderr)
        partial = store.with_name(store.name + ".partial")
        flowgen = str(Path(sys.executable).with_name("flowgen"))
        subprocess.run(
            [flowgen, "observe", "--input-file", str(path), "--store", str(partial), "--output", "json"],
            check=True,
            capture_output=True,
            cwd=ROOT,
        )
        partial.rename(store)
    return store, int(lines_file.read_text())


def _measure(store: Path, profile: bool) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", str(store), *(["--profile-child"] if profile else [])],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    if profile:
        print(done.stderr[done.stderr.find("  _     ._") :], file=sys.stderr)
    if done.returncode != 0:
        raise SystemExit(f"generate failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default="100,1000,5000", help="comma-separated graph sizes (workloads)")
    parser.add_argument("--seed", type=int, default=20261126)
    parser.add_argument("--profile", type=int, default=0, help="also profile this size with pyinstrument")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON (for bench/plot.py)")
    parser.add_argument("--write", type=Path, help="write the results into this Markdown file")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--profile-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.profile_child)
        return 0
    DATA.mkdir(parents=True, exist_ok=True)
    sizes = [int(n) for n in args.workloads.split(",")]
    rows, results = [], []
    for workloads in sizes:
        store, lines = prepare(workloads, args.seed)
        r = _measure(store, profile=False)
        r.update(workloads=workloads, lines=lines)
        results.append(r)
        rows.append(
            f"| {workloads:,} | {lines:,} | {r['files'] - 1:,} | {r['seconds']:.1f} | "
            f"{r['seconds'] / workloads * 1000:.2f} | {r['rss_mib']:.0f} |"
        )
        print(rows[-1], file=sys.stderr)
    if args.profile:
        store, _lines = prepare(args.profile, args.seed)
        _measure(store, profile=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return publish(
        [
            HEADING,
            "",
            measured(", with `make bench`"),
            f"(`python bench/generate.py --workloads {args.workloads} --seed {args.seed}`).",
            "Each graph comes from a seeded capture with the demo's mix (bench/capture.py: probes, DNS, HTTP",
            "with headers and ids in paths, Kafka, PostgreSQL, outside APIs by name; namespaces of skewed",
            "sizes, the largest holding about a sixth of the workloads), observed into a store; not committed.",
            "",
            "| workloads | capture lines | policies | seconds | ms per workload | peak RSS MiB |",
            "|---:|---:|---:|---:|---:|---:|",
            *rows,
            "",
            "The whole `flowgen generate -A --store S --output-dir D` command: read the store, fold it into",
            "edges, synthesize and validate one policy per workload (plus the DNS server's), write one file",
            "per policy and the kustomization into a new folder, flush it and rename it into place.",
        ],
        args.write,
    )


if __name__ == "__main__":
    sys.exit(main())
