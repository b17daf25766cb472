"""Seeded captures with the demo's mix of traffic, at any size: N workloads, L lines.

    python bench/capture.py --workloads 5000 --out bench/data/w5000.jsonl.gz
    python bench/capture.py --demo-mix 1000000 [--plain]    (bench/data/demo-mix-*)

Each connection is written the way fixtures/make_demo.py writes the demo's (the same
`Capture` class): a policy verdict and a trace at the source, a trace at the
destination, L7 records where a proxy is on the path, and the reply, at both
observation points. Each workload has a fixed plan of connections, drawn from the
seed, like the demo's pods:

- kubelet probes from the node (HTTP GET /healthz with headers, or plain TCP);
- a DNS lookup (L7) of each name it connects to, at the cluster DNS;
- HTTP with headers to one or two peers of its namespace, sometimes of another,
  with ids in the paths (so path folding is exercised);
- for some: Kafka produce or fetch, PostgreSQL, an outside API by name.

Namespaces have skewed sizes (the i-th holds a share proportional to 1/(i+1)), as in
real clusters where one team's namespace holds many workloads: that is where
per-namespace work that is quadratic in the workloads shows. The first pass writes
every workload's plan once (every workload is in the graph); the remaining lines
repeat random workloads' connections. A `.gz` name writes gzip (fast level).
"""

from __future__ import annotations

import argparse
import gzip
import random
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fixtures.make_demo import (  # noqa: E402 - the demo's writer, found from the repository root
    COREDNS,
    HOST_A,
    NODES,
    STRIPE,
    Capture,
    Entity,
    Pod,
    dns,
    http,
    kafka,
)

START = datetime(2026, 11, 1, tzinfo=UTC)
KAFKA = Pod("data", "kafka-0", "kafka", "10.250.0.50", 19005, NODES[1], kind="StatefulSet")
POSTGRES = Pod("data", "postgres-0", "postgres", "10.250.0.51", 19006, NODES[1], kind="StatefulSet")
OUTSIDE = (STRIPE, Entity(16777219, ("reserved:world",), "3.18.12.64"))
OUTSIDE_NAMES = ("api.stripe.com", "hooks.example-partner.com")

Connect = Callable[[Capture, int], None]


@dataclass(frozen=True)
class Cluster:
    pods: list[Pod]
    # Per workload, its connections: each writes one connection's events (the int varies ids).
    plans: list[list[Connect]]


def namespaces(workloads: int) -> list[str]:
    """The namespace of each workload: about one namespace per 250 workloads, skewed sizes."""
    count = max(1, workloads // 250)
    weights = [1 / (i + 1) for i in range(count)]
    total = sum(weights)
    sizes = [max(1, round(workloads * w / total)) for w in weights]
    sizes[0] += workloads - sum(sizes)
    return [f"team-{i}" for i, size in enumerate(sizes) for _ in range(size)]


def cluster(workloads: int, seed: int) -> Cluster:
    rng = random.Random(seed)
    pods = []
    for i, namespace in enumerate(namespaces(workloads)):
        app = f"svc-{i}"
        # A tenth of the workloads carry a second, shared label (a tier).
        extra = (f"k8s:tier={rng.choice(('web', 'api', 'worker'))}",) if rng.random() < 0.1 else ()
        pods.append(
            Pod(
                namespace,
                f"{app}-{rng.randrange(16**9):09x}-{rng.randrange(36**5):05x}",
                app,
                f"10.{i // 62500}.{i // 250 % 250}.{i % 250 + 2}",
                30000 + i,
                NODES[i % 2],
                extra=extra,
            )
        )
    by_namespace: dict[str, list[Pod]] = {}
    for pod in pods:
        by_namespace.setdefault(pod.namespace, []).append(pod)
    plans = [_plan(pod, by_namespace[pod.namespace], pods, rng) for pod in pods]
    return Cluster(pods, plans)


def _plan(pod: Pod, neighbours: list[Pod], everyone: list[Pod], rng: random.Random) -> list[Connect]:
    plan: list[Connect] = []
    if rng.random() < 0.5:
        plan.append(lambda cap, n: cap.connect(HOST_A, pod, 8080, l7=[http("GET", f"http://{pod.ip}:8080/healthz")]))
    else:
        plan.append(lambda cap, n: cap.connect(HOST_A, pod, 8080))
    peers = rng.sample(neighbours, min(len(neighbours), rng.randrange(1, 3)))
    if rng.random() < 0.2:
        peers.append(rng.choice(everyone))
    for peer in peers:
        plan.append(_http_call(pod, peer))
    roll = rng.random()
    if roll < 0.15:
        api_key = rng.choice(("produce", "fetch"))
        topic = f"events-{rng.randrange(20)}"
        plan.append(lambda cap, n: cap.connect(pod, KAFKA, 9092, l7=kafka(api_key, topic)))
    elif roll < 0.25:
        plan.append(lambda cap, n: cap.connect(pod, POSTGRES, 5432))
    elif roll < 0.3:
        which = rng.randrange(len(OUTSIDE))
        plan.append(_outside_call(pod, which))
    return plan


def _http_call(pod: Pod, peer: Pod) -> Connect:
    host = f"{peer.app}.{peer.namespace}"

    def connect(cap: Capture, n: int) -> None:
        cap.connect(pod, COREDNS, 53, proto="UDP", l7=dns(f"{host}.svc.cluster.local.", (peer.ip,)))
        cap.connect(
            pod,
            peer,
            8080,
            l7=[
                http("GET", f"http://{host}:8080/api/v1/items/{n % 977}?page={n % 7}"),
                http("GET", f"http://{host}:8080/api/v1/items/{n % 977}?page={n % 7}", 200),
            ],
        )

    return connect


def _outside_call(pod: Pod, which: int) -> Connect:
    name, peer = OUTSIDE_NAMES[which], OUTSIDE[which]

    def connect(cap: Capture, n: int) -> None:
        cap.connect(pod, COREDNS, 53, proto="UDP", l7=dns(f"{name}.", (peer.ip,)))
        cap.connect(pod, peer, 443, names=(name,))

    return connect


def connections(found: Cluster, seed: int) -> Iterator[Connect]:
    """Every workload's plan once, then random workloads' connections forever."""
    for plan in found.plans:
        yield from plan
    rng = random.Random(seed + 1)
    while True:
        yield rng.choice(rng.choice(found.plans))


# Past this many lines, a capture repeats a capture of this size (see `replicate`).
PASS = 1_000_000


def write(path: Path, *, workloads: int, lines: int = 0, seed: int = 20261126) -> int:
    """Write a capture of `workloads` workloads and at least `lines` lines (at least one pass
    over every workload's plan); returns the number of lines written. Past `PASS` lines it is
    the capture of `PASS` lines (written beside it first, and kept) repeated (see `replicate`)."""
    if lines > PASS:
        base = path.with_name(f"{path.name.split('.')[0]}-base{PASS}.jsonl.gz")
        if not base.exists():
            write(base, workloads=workloads, lines=PASS, seed=seed)
        return replicate(base, path, -(-lines // PASS))
    found = cluster(workloads, seed)
    cap = Capture(seed=f"bench-{seed}", start=START)
    written = 0
    first_pass = sum(len(plan) for plan in found.plans)
    stream: IO[bytes]
    with gzip.open(path, "wb", compresslevel=1) if path.suffix == ".gz" else path.open("wb") as stream:
        for n, connect in enumerate(connections(found, seed)):
            if n >= first_pass and written >= lines:
                break
            if n % 4 == 0:
                cap.tick(0.002)
            connect(cap, n)
            written += len(cap.lines)
            stream.write(b"\n".join(cap.lines) + b"\n")
            cap.lines.clear()
    return written


_UUID = re.compile(rb'"uuid":"[0-9a-f]{2}')


def replicate(base: Path, path: Path, passes: int) -> int:
    """Write `base` `passes` times, each copy in the next ten-minute slot (six an hour) with its
    own uuids (their first two hex digits are the copy's number): continuous traffic over a
    longer time, written in a fraction of the time. `base` must span under ten minutes from
    `START` (the 1M capture spans four)."""
    start = START.strftime("%Y-%m-%dT%H:%M").encode()
    later = (START + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M").encode()[:-1]
    written = 0
    with gzip.open(path, "wb", compresslevel=1) if path.suffix == ".gz" else path.open("wb") as stream:
        for n in range(passes):
            slot = (START + timedelta(minutes=10 * n)).strftime("%Y-%m-%dT%H:%M").encode()
            prefix = b'"uuid":"%02x' % (n % 256)
            with gzip.open(base, "rb") as source:
                while chunk := source.read(1 << 24):
                    chunk += source.readline()
                    if passes > 1 and later in chunk:
                        raise ValueError(f"{base} spans ten minutes or more: its copies would overlap")
                    written += chunk.count(b"\n")
                    # The minute's tens digit and everything before it: "2026-11-01T00:0" -> the slot's.
                    stream.write(_UUID.sub(prefix, chunk.replace(start[:-1], slot[:-1])))
    return written


DATA = ROOT / "bench" / "data"
# The workloads of the 1M and 10M captures: a mid-sized cluster's worth.
WORKLOADS = 240


def demo_mix(lines: int, seed: int, *, plain: bool = False) -> Path:
    """The capture of `lines` lines of `WORKLOADS` workloads under bench/data/, written once and
    kept (gzip; `plain`: uncompressed, from the gzip one). It is written by a process of its
    own: a process's peak RSS passes to the children it starts, and the benchmarks measure theirs."""
    path = DATA / f"demo-mix-{lines}-{seed}.jsonl{'' if plain else '.gz'}"
    if not path.exists():
        command = [sys.executable, __file__, "--demo-mix", str(lines), "--seed", str(seed)]
        subprocess.run([*command, *(["--plain"] if plain else [])], check=True)
    return path


def workloads_capture(path: Path, workloads: int, seed: int) -> int:
    """`write(path, workloads=workloads, seed=seed)` in a process of its own (see `demo_mix`);
    returns the number of lines."""
    command = [sys.executable, __file__, "--workloads", str(workloads), "--seed", str(seed), "--out", str(path)]
    return int(subprocess.run(command, check=True, capture_output=True, text=True).stdout)


def _write_demo_mix(lines: int, seed: int, *, plain: bool) -> None:
    path = DATA / f"demo-mix-{lines}-{seed}.jsonl{'' if plain else '.gz'}"
    DATA.mkdir(parents=True, exist_ok=True)
    partial = path.with_name("partial-" + path.name)
    if plain:
        source_path = demo_mix(lines, seed)
        print(f"writing {path} ...", file=sys.stderr)
        with gzip.open(source_path, "rb") as source, partial.open("wb") as out:
            shutil.copyfileobj(source, out, 1 << 24)
    elif lines > PASS:
        base = demo_mix(PASS, seed)
        print(f"writing {path} ...", file=sys.stderr)
        replicate(base, partial, -(-lines // PASS))
    else:
        print(f"writing {path} ...", file=sys.stderr)
        write(partial, workloads=WORKLOADS, lines=lines, seed=seed)
    partial.rename(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", type=int, default=240)
    parser.add_argument("--lines", type=int, default=0, help="at least this many lines (default: one pass)")
    parser.add_argument("--seed", type=int, default=20261126)
    parser.add_argument("--out", type=Path, help="write here (prints the number of lines)")
    parser.add_argument("--demo-mix", type=int, metavar="LINES", help="write the demo-mix capture under bench/data/")
    parser.add_argument("--plain", action="store_true", help="with --demo-mix: uncompressed")
    args = parser.parse_args()
    if args.demo_mix:
        _write_demo_mix(args.demo_mix, args.seed, plain=args.plain)
        return 0
    if args.out is None:
        parser.error("give --out or --demo-mix")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    print(write(args.out, workloads=args.workloads, lines=args.lines, seed=args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
