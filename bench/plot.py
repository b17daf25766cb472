"""The plot of docs/performance.md: throughput and memory against input size.

    python bench/plot.py --observe bench/data/observe.json --generate bench/data/generate.json \
        --out docs/performance.png   (make bench)

It reads the rows bench/aggregate.py and bench/generate.py wrote with --json and draws
four panels: observe's flows/s (beside the orjson-only rate of the same lines) and peak
RSS against the number of flows, generate's seconds and peak RSS against the number of
workloads.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: write the file only
import matplotlib.pyplot as plt


def _rows(path: Path | None) -> list[dict[str, Any]]:
    if path is None or not path.exists():
        return []
    rows: list[dict[str, Any]] = json.loads(path.read_text())
    return rows


def plot(observe: list[dict[str, Any]], generate: list[dict[str, Any]], out: Path, title: str) -> None:
    figure, ((rate, memory), (seconds, generate_memory)) = plt.subplots(2, 2, figsize=(11, 8))
    figure.suptitle(title, fontsize=10)
    for kind, style in (("gzip", "-"), ("plain", "--")):
        rows = sorted((r for r in observe if r.get("format", "gzip") == kind), key=lambda r: r["flows"])
        if not rows:
            continue
        flows = [r["flows"] for r in rows]
        rate.plot(flows, [r["flows"] / r["seconds"] for r in rows], "o" + style, label=f"observe ({kind})")
        if all("orjson_rate" in r for r in rows):
            rate.plot(flows, [r["orjson_rate"] for r in rows], "s" + style, label=f"orjson only ({kind})")
        memory.plot(flows, [r["rss_mib"] for r in rows], "o" + style, label=f"observe ({kind})")
    rate.set(xscale="log", xlabel="flows in the capture", ylabel="flows/s (one core)", title="file -> graph")
    rate.set_ylim(bottom=0)
    memory.set(xscale="log", xlabel="flows in the capture", ylabel="peak RSS MiB", title="file -> graph memory")
    memory.axhline(300, color="grey", linestyle=":", label="target (300 MiB)")
    rows = sorted(generate, key=lambda r: r["workloads"])
    if rows:
        workloads = [r["workloads"] for r in rows]
        seconds.plot(workloads, [r["seconds"] for r in rows], "o-", label="generate -A -d")
        seconds.plot([5000], [30], "v", color="grey", label="target: 5,000 workloads in 30 s")
        generate_memory.plot(workloads, [r["rss_mib"] for r in rows], "o-", label="generate -A -d")
    seconds.set(xscale="log", yscale="log", xlabel="workloads", ylabel="seconds", title="generate")
    generate_memory.set(xscale="log", xlabel="workloads", ylabel="peak RSS MiB", title="generate memory")
    memory.set_ylim(0, max([300, *(r["rss_mib"] for r in observe)]) * 1.15)
    generate_memory.set_ylim(0, max([100, *(r["rss_mib"] for r in generate)]) * 1.15)
    for axes in (rate, memory, seconds, generate_memory):
        axes.grid(True, which="both", alpha=0.3)
        if axes.get_legend_handles_labels()[0]:
            axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(out, dpi=90)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--observe", type=Path)
    parser.add_argument("--generate", type=Path)
    parser.add_argument("--title", default="flowgen: make bench")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    plot(_rows(args.observe), _rows(args.generate), args.out, args.title)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
