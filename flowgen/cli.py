"""The flowgen command line: the only module that prints, reads the environment or exits."""

from __future__ import annotations

import os

# grpc reads this once, when first imported (by flowgen.dialing below): without it,
# grpc's own INFO lines ("Handshake failed ...") clutter stderr next to flowgen's messages.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

import enum
import shlex
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import IO, TYPE_CHECKING, Annotated

import orjson
import platformdirs
import typer
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from flowgen import __version__
from flowgen.cluster import cluster_cilium_version, cluster_policies
from flowgen.diagram import dot, mermaid, peer_label, several_clusters
from flowgen.dialing import Connection
from flowgen.diff import compare
from flowgen.engine import Engine
from flowgen.engine import Mode as EngineMode
from flowgen.errors import FlowgenError, InputError, UsageError
from flowgen.folder import read_policies, write_policies
from flowgen.graph import BuildOptions, Edge, GraphBuilder, collapse, edges, namespace_filter, to_csv
from flowgen.hubble import Connected, Event, Lost, NodeStatus, Query, Reconnecting, RelayStream
from flowgen.identity import Peer
from flowgen.render import dump
from flowgen.report import (
    comparison_json,
    comparison_markdown,
    comparison_text,
    notes_markdown,
    verification_json,
    verification_markdown,
    verification_text,
)
from flowgen.session import Observation
from flowgen.source import JsonLineReader, ReadReport, check_inputs, read_files
from flowgen.store import Store, new_run_id
from flowgen.summary import FlowSummary
from flowgen.synth import L7Mode, Note, Options, Proposal, WorldMode, synthesize
from flowgen.timespec import parse_duration, parse_since, parse_time
from flowgen.validation import validate
from flowgen.verify import verify as run_verify

if TYPE_CHECKING:
    import pandas as pd

app = typer.Typer(
    name="flowgen",
    help="Learn least-privilege CiliumNetworkPolicies from Hubble flows.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
# markup=False: messages carry user content (paths, file lines) that must print as is.
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)
out = Console(highlight=False, soft_wrap=True, markup=False)

# How many malformed-line locations the text summary shows.
SHOWN_PROBLEMS = 5
# How many notes of one kind generate prints (all go to --report).
SHOWN_NOTES = 10
LOST_ADVICE = (
    "Hubble dropped events before flowgen saw them: raise its buffer "
    "(Helm hubble.eventBufferCapacity / hubble.eventQueueSize) or narrow the filters"
)


class OutputFormat(enum.StrEnum):
    auto = "auto"
    text = "text"
    json = "json"


class GraphFormat(enum.StrEnum):
    table = "table"
    csv = "csv"
    json = "json"
    mermaid = "mermaid"
    dot = "dot"


def _version(value: bool) -> None:
    if value:
        out.print(f"flowgen {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Learn least-privilege CiliumNetworkPolicies from Hubble flows."""


@contextmanager
def _errors() -> Iterator[None]:
    """The one error boundary: expected failures print `Error: ...` and exit 1 (usage errors 2)."""
    try:
        yield
    except UsageError as problem:
        err.print(f"[red]Error:[/red] {escape(str(problem))}", markup=True)
        raise typer.Exit(2) from None
    except FlowgenError as problem:
        err.print(f"[red]Error:[/red] {escape(str(problem))}", markup=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        err.print("Interrupted.")
        raise typer.Exit(130) from None


def default_store() -> Path:
    return Path(platformdirs.user_data_dir("flowgen")) / "store"


StoreOption = Annotated[
    Path | None,
    typer.Option(
        "--store",
        envvar="FLOWGEN_STORE",
        help="Observation store directory (default: flowgen/store under the user data directory).",
        show_default=False,
    ),
]
NamespaceOption = Annotated[
    list[str] | None,
    typer.Option("--namespace", "-n", help="Only flows with an endpoint in this namespace (repeatable)."),
]
InputOption = Annotated[
    list[str] | None,
    typer.Option(
        "--input-file",
        "-i",
        help="Hubble JSON lines to read (hubble observe -o json, exporter files, .gz); "
        "repeat for several files; - reads stdin.",
    ),
]
SinceOption = Annotated[
    str | None, typer.Option("--since", help="Only flows since this time: a duration back (7d, 1h) or RFC 3339.")
]


@app.command()
def observe(
    input_file: InputOption = None,
    server: Annotated[
        str,
        typer.Option(
            "--server",
            envvar=["FLOWGEN_SERVER", "HUBBLE_SERVER"],
            help="Hubble Relay address; a tls:// prefix turns TLS on.",
        ),
    ] = "localhost:4245",
    tls: Annotated[bool, typer.Option("--tls", help="Connect with TLS (server certificate verified).")] = False,
    tls_ca_cert_files: Annotated[
        list[Path] | None, typer.Option("--tls-ca-cert-files", help="PEM CA bundle to verify the server (repeatable).")
    ] = None,
    tls_client_cert_file: Annotated[
        Path | None, typer.Option("--tls-client-cert-file", help="Client certificate for mutual TLS.")
    ] = None,
    tls_client_key_file: Annotated[
        Path | None, typer.Option("--tls-client-key-file", help="Client key for mutual TLS.")
    ] = None,
    tls_server_name: Annotated[
        str | None, typer.Option("--tls-server-name", help="Name to verify, e.g. hubble.hubble-relay.cilium.io.")
    ] = None,
    tls_allow_insecure: Annotated[
        bool, typer.Option("--tls-allow-insecure", help="Do not verify the server certificate (insecure).")
    ] = False,
    timeout: Annotated[str, typer.Option("--timeout", help="How long to wait for the connection.")] = "5s",
    duration: Annotated[
        str | None, typer.Option("--duration", help="Stop after this long (1h, 30m, 90s); default: until Ctrl-C.")
    ] = None,
    until: Annotated[str | None, typer.Option("--until", help="Stop at this time (RFC 3339).")] = None,
    since: SinceOption = None,
    namespace: NamespaceOption = None,
    store: StoreOption = None,
    no_store: Annotated[bool, typer.Option("--no-store", help="Only summarize; write nothing.")] = False,
    checkpoint: Annotated[str, typer.Option("--checkpoint", help="Save to the store this often.")] = "60s",
    save_flows: Annotated[
        Path | None,
        typer.Option("--save-flows", help="Also write the raw flows as jsonpb lines (readable by hubble and flowgen)."),
    ] = None,
    max_paths: Annotated[int, typer.Option(help="Distinct HTTP paths kept per edge before folding.", min=1)] = 100,
    strict: Annotated[bool, typer.Option(help="Files: stop at the first malformed line (exit 1).")] = False,
    output: Annotated[
        OutputFormat, typer.Option("--output", "-o", help="Summary format; auto is text on a terminal, else JSON.")
    ] = OutputFormat.auto,
) -> None:
    """Observe flows (from Hubble Relay or files) and add them to the store.

    Without --input-file, streams from Hubble Relay until --duration, --until
    or Ctrl-C; the graph is checkpointed every --checkpoint and at the end
    (also on SIGTERM). With --input-file, reads the files into the same store.

    Example:

        flowgen observe --input-file fixtures/flows/demo.jsonl --store /tmp/flowgen-store

        cilium hubble port-forward &  flowgen observe --duration 1h -n shop

        hubble observe -o json --last 1000 | flowgen observe -i -
    """
    with _errors():
        now = datetime.now(UTC)
        since_at = parse_since(since, "--since", now) if since else None
        every = parse_duration(checkpoint, "--checkpoint").total_seconds()
        store_at = None if no_store else (store or default_store())
        run = new_run_id(now)
        builder = GraphBuilder(BuildOptions(max_paths=max_paths))
        report = ReadReport()
        namespaces = frozenset(namespace or ())
        fmt = (
            output if output is not OutputFormat.auto else (OutputFormat.text if out.is_terminal else OutputFormat.json)
        )
        if input_file:
            if save_flows or duration or until:
                raise UsageError("--save-flows, --duration and --until apply to live streams, not to --input-file")
            check_inputs(input_file)
            source = ", ".join(input_file)
        else:
            source = f"relay {server}"
        with _saving(save_flows) as save:
            session = Observation(
                builder,
                store=Store(store_at) if store_at else None,
                run=run,
                meta=lambda: {"source": source, "namespaces": sorted(namespaces), "read": _read_meta(report)},
                summary=FlowSummary(),
                namespaces=namespaces,
                checkpoint_every=every,
                save=save,
            )
            with _graceful_stop(session):
                if input_file:
                    warn = lambda message: err.print(f"Warning: {message}")  # noqa: E731
                    flows = read_files(input_file, JsonLineReader(report, strict=strict, warn=warn))
                    if since_at is not None:
                        flows = (f for f in flows if f.time is None or f.time >= since_at)
                    session.read(flows)
                else:
                    stream, seconds = _relay_stream(
                        Connection(
                            server=server,
                            tls=tls,
                            ca_cert_files=tuple(str(p) for p in tls_ca_cert_files or ()),
                            client_cert_file=str(tls_client_cert_file) if tls_client_cert_file else None,
                            client_key_file=str(tls_client_key_file) if tls_client_key_file else None,
                            server_name=tls_server_name,
                            allow_insecure=tls_allow_insecure,
                            timeout=parse_duration(timeout, "--timeout").total_seconds(),
                        ),
                        Query(
                            namespaces=tuple(sorted(namespaces)),
                            since=since_at,
                            until=parse_time(until, "--until") if until else None,
                        ),
                        duration,
                    )
                    _follow(session, stream, seconds)
                session.checkpoint()
        summary = _observe_summary(session, report, input_file or [], str(store_at) if store_at else None)
        if fmt is OutputFormat.json:
            sys.stdout.write(orjson.dumps(summary).decode() + "\n")
        else:
            _print_observe(summary, report)


def _relay_stream(connection: Connection, query: Query, duration: str | None) -> tuple[RelayStream, float | None]:
    if connection.warning:
        err.print(f"Warning: {connection.warning}")
    seconds = parse_duration(duration, "--duration").total_seconds() if duration else None
    deadline = time.monotonic() + seconds if seconds is not None else None
    return RelayStream(connection, query, deadline=deadline), seconds


def _read_meta(report: ReadReport) -> dict[str, object]:
    return {
        "lines": report.lines,
        "malformed": report.malformed,
        "skipped": dict(report.skipped),
        "lost_events": dict(report.lost_events),
    }


@contextmanager
def _graceful_stop(session: Observation) -> Iterator[None]:
    """Ctrl-C and SIGTERM end the run after a last checkpoint, instead of killing it."""

    def handler(number: int, _frame: FrameType | None) -> None:
        session.stop(signal.Signals(number).name)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextmanager
def _saving(path: Path | None) -> Iterator[IO[bytes] | None]:
    if path is None:
        yield None
        return
    try:
        stream = path.open("ab")
    except OSError as problem:
        raise InputError(f"cannot write --save-flows {path}: {problem.strerror}") from None
    with stream:
        yield stream


def _follow(session: Observation, stream: RelayStream, seconds: float | None) -> None:
    """Run the live stream, with a progress display on a terminal."""
    started = time.monotonic()
    live_view = err.is_terminal

    def status() -> str:
        elapsed = time.monotonic() - started
        summary, counters = session.summary, session.counters
        rate = summary.kept / elapsed if elapsed > 0 else 0.0
        remaining = f" / {max(0.0, seconds - elapsed):.0f}s left" if seconds is not None else ""
        return (
            f"flows {summary.kept:,} ({rate:,.0f}/s)  evidence {sum(session.builder.report.evidence.values()):,}  "
            f"denied {session.denied:,}  lost {sum(counters.lost.values()):,}  "
            f"nodes {len(counters.nodes_connected) or len(summary.nodes)}  {elapsed:.0f}s{remaining}"
        )

    def notice(event: Event) -> None:
        if isinstance(event, Reconnecting):
            err.print(
                f"Relay stream lost ({event.error}); reconnecting in {event.delay:.1f}s (attempt {event.attempt})"
            )
        elif isinstance(event, Connected):
            resumed = f", resuming from {event.resumed_from.isoformat()}" if event.resumed_from else ""
            version = f" ({event.version})" if event.version else ""
            err.print(f"Connected to {event.server}{version}{resumed}")
        elif isinstance(event, NodeStatus) and event.state != "NODE_CONNECTED":
            err.print(f"Nodes {event.state.lower().removeprefix('node_')}: {', '.join(event.nodes)} {event.message}")
        elif isinstance(event, Lost):
            err.print(f"Lost {event.count} events ({event.source}). {LOST_ADVICE}")

    if not live_view:
        session.follow(stream, notice)
        return
    with Live(status(), console=err, refresh_per_second=2, transient=True) as live:

        def update(event: Event) -> None:
            notice(event)
            live.update(status())

        session.follow(stream, update)


def _observe_summary(
    session: Observation, report: ReadReport, inputs: list[str], store: str | None
) -> dict[str, object]:
    summary, counters, built = session.summary, session.counters, session.builder.report
    frame = session.builder.frame()
    lost = report.lost_events + counters.lost
    return {
        "inputs": inputs,
        "lines": report.lines,
        "flows": report.flows if inputs else built.flows + summary.filtered_out,
        "kept": summary.kept,
        "filtered_out": summary.filtered_out,
        "skipped": dict(sorted(report.skipped.items())),
        "malformed": report.malformed,
        "malformed_examples": [str(p) for p in report.problems],
        "lost_events": dict(sorted(lost.items())),
        "unknown_fields": report.unknown_fields,
        "first": summary.first.isoformat() if summary.first else None,
        "last": summary.last.isoformat() if summary.last else None,
        "namespaces": dict(sorted(summary.namespaces.items())),
        "verdicts": dict(sorted(summary.verdicts.items())),
        "drop_reasons": dict(sorted(summary.drop_reasons.items())),
        "nodes": sorted(summary.nodes | counters.nodes_connected),
        "nodes_unavailable": sorted(counters.nodes_unavailable),
        "reconnects": counters.reconnects,
        "evidence": {str(k): v for k, v in sorted(built.evidence.items())},
        "not_evidence": {str(k): v for k, v in sorted(built.skipped.items())},
        "repeated": built.repeated,
        "folded_paths": sum(built.folded.values()),
        "edges": len(collapse(frame)),
        "store": store,
        "checkpoint": str(session.last_checkpoint) if session.last_checkpoint else None,
        "stopped_by": session.stop_reason or None,
        "saved_flows": counters.saved_flows,
    }


def _counts(counter: dict[str, int]) -> str:
    return ", ".join(f"{name} {count}" for name, count in sorted(counter.items())) or "none"


def _print_observe(s: dict[str, object], report: ReadReport) -> None:
    def counts(key: str) -> str:
        value = s[key]
        assert isinstance(value, dict)
        return _counts(value)

    inputs = s["inputs"]
    assert isinstance(inputs, list)
    if inputs:
        out.print(f"Read {s['lines']} records from {len(inputs)} input(s): {s['flows']} flows")
    else:
        out.print(f"Received {s['flows']} flows from Hubble Relay ({s['reconnects']} reconnects)")
    filtered = f" ({s['filtered_out']} outside -n)" if s["filtered_out"] else ""
    out.print(f"  kept:       {s['kept']}{filtered}")
    out.print(f"  skipped:    {counts('skipped')}")
    out.print(f"  malformed:  {s['malformed']}")
    for problem in report.problems[:SHOWN_PROBLEMS]:
        out.print(f"              {problem}")
    if report.malformed > SHOWN_PROBLEMS:
        out.print(f"              ... and {report.malformed - SHOWN_PROBLEMS} more")
    lost = s["lost_events"]
    assert isinstance(lost, dict)
    total = sum(lost.values())
    out.print(f"  lost:       {total}" + (f" ({_counts(lost)})" if total else ""))
    if total:
        out.print(f"              {LOST_ADVICE}")
    if report.unknown_fields:
        out.print(f"  ignored:    {', '.join(report.unknown_fields)} (unknown to this flowgen)")
    if s["first"] and s["last"]:
        first, last = datetime.fromisoformat(str(s["first"])), datetime.fromisoformat(str(s["last"]))
        out.print(f"  time:       {s['first']} .. {s['last']} ({last - first})")
    out.print(f"  namespaces: {counts('namespaces')}")
    out.print(f"  verdicts:   {counts('verdicts')}")
    if s["drop_reasons"]:
        out.print(f"  drops:      {counts('drop_reasons')}")
    nodes = s["nodes"]
    assert isinstance(nodes, list)
    out.print(f"  nodes:      {len(nodes)}")
    out.print(f"  evidence:   {counts('evidence')} ({s['repeated']} repeated sightings of a connection)")
    out.print(f"  not used:   {counts('not_evidence')}")
    if s["folded_paths"]:
        out.print(f"  folded:     {s['folded_paths']} requests had their HTTP path folded (see flowgen graph)")
    where = f"saved to {s['checkpoint']}" if s["checkpoint"] else "not saved (--no-store)"
    out.print(f"  graph:      {s['edges']} edges, {where}")
    if s["stopped_by"]:
        out.print(f"  stopped by: {s['stopped_by']} (last checkpoint kept)")


@app.command()
def graph(
    input_file: InputOption = None,
    store: StoreOption = None,
    namespace: NamespaceOption = None,
    since: SinceOption = None,
    format: Annotated[GraphFormat, typer.Option("--format", "-f", help="Output format.")] = GraphFormat.table,
) -> None:
    """Show the observed communication graph, from the store or from flow files.

    One row (or arrow) per edge: source, destination, protocol/port, L7
    attribute, what the evidence said (allowed, audit, denied) and how often.

    Example:

        flowgen graph --store /tmp/flowgen-store -n shop

        flowgen graph -i fixtures/flows/demo.jsonl --format mermaid > graph.mmd
    """
    with _errors():
        frame = _load_graph(input_file, store, since)
        collapsed = collapse(namespace_filter(frame, namespace or ()))
        if format is GraphFormat.csv:
            sys.stdout.write(to_csv(collapsed))
        else:
            _print_graph(edges(collapsed), format)


def _load_graph(input_file: list[str] | None, store: Path | None, since: str | None) -> pd.DataFrame:
    """The observed graph: built from flow files when given, else read from the store."""
    since_at = parse_since(since, "--since", datetime.now(UTC)) if since else None
    if input_file:
        check_inputs(input_file)
        builder = GraphBuilder()
        reader = JsonLineReader(warn=lambda message: err.print(f"Warning: {message}"))
        flows = read_files(input_file, reader)
        builder.add_all(f for f in flows if since_at is None or f.time is None or f.time >= since_at)
        return builder.frame()
    where = store or default_store()
    loaded = Store(where).load(since_at)
    for path, reason in loaded.problems:
        err.print(f"Warning: skipping unreadable store file {path}: {reason}")
    if not loaded.runs:
        raise InputError(
            f"the store at {where} holds no observations yet; run `flowgen observe` first "
            "(or pass --store DIR / --input-file FILE)"
        )
    return loaded.frame


def _print_graph(found: list[Edge], format: GraphFormat) -> None:
    cluster = several_clusters(found)
    if format is GraphFormat.mermaid:
        sys.stdout.write(mermaid(found))
    elif format is GraphFormat.dot:
        sys.stdout.write(dot(found))
    elif format is GraphFormat.json:
        records = [
            {
                "source": peer_label(e.source, e.source_workload, cluster=cluster),
                "source_peer": _peer_json(e.source),
                "destination": peer_label(e.destination, e.destination_workload, cluster=cluster),
                "destination_peer": _peer_json(e.destination),
                "protocol": e.protocol,
                "port": e.port,
                "l7": {"kind": str(e.l7.kind), "method": e.l7.method, "path": e.l7.path, "query": e.l7.query}
                if e.l7.kind
                else None,
                "folded": e.folded,
                "use": str(e.use),
                "drop_reason": e.drop_reason or None,
                "flows": e.flows,
                "events": e.events,
                "first": e.first.isoformat(),
                "last": e.last.isoformat(),
                "nodes": list(e.nodes),
            }
            for e in found
        ]
        sys.stdout.write(orjson.dumps(records, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        table = Table(box=None, header_style="bold", pad_edge=False)
        for column in ("source", "destination", "port", "l7", "use", "flows", "last seen", "nodes"):
            table.add_column(column, justify="right" if column == "flows" else "left")
        for e in found:
            l7 = " ".join(part for part in (e.l7.kind, e.l7.method, e.l7.path) if part)
            table.add_row(
                peer_label(e.source, e.source_workload, cluster=cluster),
                peer_label(e.destination, e.destination_workload, cluster=cluster),
                f"{e.protocol}/{e.port}",
                l7 + (" (folded)" if e.folded else "") + (" ?query" if e.l7.query else ""),
                str(e.use) + (f" {e.drop_reason}" if e.drop_reason else ""),
                str(e.flows),
                f"{e.last:%Y-%m-%d %H:%M}",
                str(len(e.nodes)),
            )
        # Piped output is not cut to 80 columns: the table is as wide as its content.
        wide = out if out.is_terminal else Console(highlight=False, width=100_000, markup=False)
        wide.print(table)
        wide.print(f"{len(found)} edges")


def _peer_json(peer: Peer) -> dict[str, object]:
    return {
        "kind": str(peer.kind),
        "cluster": peer.cluster or None,
        "namespace": peer.namespace or None,
        "labels": list(peer.labels),
        "name": peer.name or None,
    }


class Mode(enum.StrEnum):
    default = "default"
    always = "always"
    never = "never"


class CiliumRelease(enum.StrEnum):
    auto = "auto"


@app.command()
def generate(
    context: typer.Context,
    namespace: Annotated[
        list[str] | None,
        typer.Option("--namespace", "-n", help="Generate policies for the workloads of this namespace (repeatable)."),
    ] = None,
    all_namespaces: Annotated[
        bool, typer.Option("--all-namespaces", "-A", help="Generate for every namespace seen.")
    ] = False,
    input_file: InputOption = None,
    store: StoreOption = None,
    since: SinceOption = None,
    output: Annotated[
        str, typer.Option("--output", "-o", help="Directory for one file per policy + kustomization.yaml; - prints.")
    ] = "-",
    cilium_version: Annotated[
        str,
        typer.Option("--cilium-version", help="Policy language of this Cilium release (1.16 ... 1.20), or auto."),
    ] = "1.19",
    l7: Annotated[L7Mode, typer.Option("--l7", help="Which L7 rules to write where L7 was seen.")] = L7Mode.ALL,
    world: Annotated[
        WorldMode, typer.Option("--world", help="Egress to outside addresses without a DNS name: /32 CIDRs or world.")
    ] = WorldMode.CIDR,
    world_clients: Annotated[
        int, typer.Option(help="Distinct outside clients on a port from which ingress allows the world entity.", min=1)
    ] = 5,
    dns_collapse: Annotated[
        int, typer.Option(help="DNS names under one parent past which they collapse to *.parent.", min=1)
    ] = 10,
    path_collapse: Annotated[
        int, typer.Option(help="HTTP paths per peer, port and method past which they collapse by prefix.", min=1)
    ] = 20,
    min_flows: Annotated[int, typer.Option(help="Report workloads with fewer flows than this.", min=0)] = 10,
    min_span: Annotated[str, typer.Option(help="Report workloads observed for less than this.")] = "1h",
    default_deny: Annotated[
        bool, typer.Option("--default-deny", help="Add a per-namespace default deny that still allows DNS.")
    ] = False,
    clusterwide: Annotated[
        bool, typer.Option("--clusterwide", help="Add cluster-wide baselines (DNS for every pod, probes from host).")
    ] = False,
    report: Annotated[
        Path | None, typer.Option("--report", help="Also write the notes to this file (.md Markdown or .json).")
    ] = None,
) -> None:
    """Generate least-privilege CiliumNetworkPolicies from the observed graph.

    One policy per observed workload, with ingress and egress rules for what was
    seen and nothing else. Everything the evidence did not turn into a rule is
    listed on stderr (and in --report).

    Example:

        flowgen generate -n shop --store /tmp/flowgen-store --output policies/

        flowgen generate -A -i fixtures/flows/demo.jsonl --default-deny
    """
    with _errors():
        if not namespace and not all_namespaces:
            raise UsageError("say which workloads to generate for: -n NAMESPACE (repeatable) or -A")
        version = _cilium_version(cilium_version)
        options = Options(
            version=version,
            l7=l7,
            world=world,
            world_clients=world_clients,
            dns_collapse=dns_collapse,
            path_collapse=path_collapse,
            min_flows=min_flows,
            min_span=parse_duration(min_span, "--min-span"),
            default_deny=default_deny,
            clusterwide=clusterwide,
            command=_command_line(context),
        )
        if clusterwide and version < (1, 16):
            raise UsageError("--clusterwide needs Cilium 1.16 or later (enableDefaultDeny)")
        found = edges(collapse(_load_graph(input_file, store, since)))
        proposal = synthesize(found, [] if all_namespaces else namespace or [], options)
        problems = [problem for p in proposal.policies for problem in validate(p, version)]
        if problems:
            raise FlowgenError(
                "a generated policy would be rejected by Cilium (a flowgen bug; please report it with the "
                "flows):\n  " + "\n  ".join(problems)
            )
        if output == "-":
            sys.stdout.write(dump(proposal.policies))
        else:
            written = write_policies(Path(output), proposal.policies)
            err.print(f"Wrote {len(proposal.policies)} policies and kustomization.yaml to {output} ({written})")
        _print_notes(proposal.notes)
        if report is not None:
            _write_report(report, proposal)


def _cilium_version(text: str) -> tuple[int, int]:
    if text == CiliumRelease.auto:
        return cluster_cilium_version()
    parts = text.strip().lstrip("v").split(".")
    try:
        version = (int(parts[0]), int(parts[1]))
    except (IndexError, ValueError):
        raise UsageError(f"--cilium-version: {text!r} is not a release; write it like 1.19, or auto") from None
    if not (1, 14) <= version <= (1, 20):
        raise UsageError(f"--cilium-version {text}: flowgen writes policies for Cilium 1.14 to 1.20")
    return version


def _command_line(context: typer.Context) -> str:
    """The running command with the options that differ from their defaults, in a canonical
    order (for the header that says how to regenerate a file; deterministic, unlike argv)."""
    words = ["flowgen", context.info_name or ""]
    for param in context.command.params:
        value = context.params.get(param.name or "")
        source = context.get_parameter_source(param.name or "")
        # Only what was typed: defaults and environment variables (FLOWGEN_STORE) are not repeated.
        if param.param_type_name != "option" or source is None or source.name != "COMMANDLINE":
            continue
        if value == param.default or value in (None, [], ()):
            continue
        flag = max(param.opts, key=len)
        if getattr(param, "is_flag", False):
            words.append(flag)
            continue
        for item in value if isinstance(value, list | tuple) else [value]:
            words += [flag, shlex.quote(str(item.value if isinstance(item, enum.Enum) else item))]
    return " ".join(words)


def _print_notes(notes: tuple[Note, ...]) -> None:
    if not notes:
        err.print("Notes: none; every observed flow of the selected workloads is covered by a rule.")
        return
    by_kind: dict[str, list[Note]] = {}
    for note in notes:
        by_kind.setdefault(str(note.kind), []).append(note)
    err.print(f"Notes ({len(notes)}): what the evidence did not turn into a rule, and what to review")
    for kind, group in by_kind.items():
        err.print(f"  {kind} ({len(group)}):")
        for note in group[:SHOWN_NOTES]:
            err.print(f"    {note.subject}: {note.message}")
        if len(group) > SHOWN_NOTES:
            err.print(f"    ... and {len(group) - SHOWN_NOTES} more (see --report)")


def _write_report(path: Path, proposal: Proposal) -> None:
    if path.suffix == ".json":
        document = {
            "policies": [{"kind": p.kind.value, "namespace": p.namespace, "name": p.name} for p in proposal.policies],
            "notes": [
                {"kind": str(n.kind), "subject": n.subject, "message": n.message, "flows": n.flows}
                for n in proposal.notes
            ],
        }
        text = orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n"
    else:
        text = notes_markdown(proposal)
    try:
        path.write_text(text)
    except OSError as problem:
        raise InputError(f"cannot write --report {path}: {problem.strerror}") from None


class ReportFormat(enum.StrEnum):
    text = "text"
    markdown = "markdown"
    json = "json"


FormatOption = Annotated[ReportFormat, typer.Option("--format", "-f", help="Report format.")]
ExitCodeOption = Annotated[
    bool, typer.Option("--exit-code", help="Exit 1 when anything would be dropped or differs (for CI gates).")
]


@app.command()
def verify(
    policies: Annotated[
        list[Path],
        typer.Option("--policies", "-p", help="Policy YAML files or folders (repeatable; CNP and CCNP)."),
    ],
    input_file: InputOption = None,
    store: StoreOption = None,
    namespace: NamespaceOption = None,
    since: SinceOption = None,
    cilium_version: Annotated[str, typer.Option("--cilium-version", help="Cilium release (1.16 ... 1.20).")] = "1.19",
    mode: Annotated[Mode, typer.Option("--mode", help="Cilium's policy enforcement mode.")] = Mode.default,
    format: FormatOption = ReportFormat.text,
    exit_code: ExitCodeOption = False,
) -> None:
    """Replay observed requests against policies and report what they would drop.

    Nothing is applied anywhere: flowgen decides offline, the way Cilium would,
    and says which rule refuses each request. DNS lookups that would be refused
    are listed on their own (names behind toFQDNs rules would stop resolving).

    Example:

        flowgen verify --policies policies/ --input-file fixtures/flows/demo.jsonl

        flowgen verify -p policies/ --store /tmp/flowgen-store -n shop --format markdown --exit-code
    """
    with _errors():
        version = _cilium_version(cilium_version)
        existing, skipped = read_policies(policies)
        for message in skipped:
            err.print(f"Note: {message}")
        found = edges(collapse(_load_graph(input_file, store, since)))
        result = run_verify(found, Engine(existing, mode=EngineMode(mode), version=version), namespace or ())
        if format is ReportFormat.json:
            sys.stdout.write(
                orjson.dumps(verification_json(result, len(existing)), option=orjson.OPT_INDENT_2).decode()
            )
            sys.stdout.write("\n")
        elif format is ReportFormat.markdown:
            sys.stdout.write(verification_markdown(result, len(existing)))
        else:
            sys.stdout.write(verification_text(result, len(existing)))
        if exit_code and result.drops:
            raise typer.Exit(1)


@app.command()
def diff(
    context: typer.Context,
    existing: Annotated[
        list[Path] | None,
        typer.Option("--existing", "-e", help="Existing policy YAML files or folders (a GitOps folder; repeatable)."),
    ] = None,
    from_cluster: Annotated[
        bool, typer.Option("--from-cluster", help="Read the existing CNPs and CCNPs from the cluster (kubectl).")
    ] = False,
    kube_context: Annotated[str | None, typer.Option("--context", help="kubectl context for --from-cluster.")] = None,
    namespace: NamespaceOption = None,
    all_namespaces: Annotated[bool, typer.Option("--all-namespaces", "-A", help="Every namespace seen.")] = False,
    input_file: InputOption = None,
    store: StoreOption = None,
    since: SinceOption = None,
    cilium_version: Annotated[str, typer.Option("--cilium-version", help="Cilium release (1.16 ... 1.20).")] = "1.19",
    l7: Annotated[L7Mode, typer.Option("--l7", help="L7 rules in the proposal.")] = L7Mode.ALL,
    default_deny: Annotated[
        bool, typer.Option("--default-deny", help="The proposal includes per-namespace default deny.")
    ] = False,
    format: FormatOption = ReportFormat.text,
    exit_code: ExitCodeOption = False,
) -> None:
    """Compare existing policies with what the observed traffic needs and with the proposal.

    Reports allowances the traffic needs that no existing policy grants, existing
    allow rules no observed request used in the window, policy-denied drops with
    the policies behind them, and a YAML diff per policy against what
    `flowgen generate` would write.

    Example:

        flowgen diff --existing gitops/policies/ -n shop --input-file fixtures/flows/demo.jsonl

        flowgen diff --from-cluster --context prod -A --store /tmp/flowgen-store --format markdown
    """
    with _errors():
        if bool(existing) == from_cluster:
            raise UsageError("say where the existing policies are: --existing DIR (repeatable) or --from-cluster")
        if not namespace and not all_namespaces:
            raise UsageError("say which workloads to compare: -n NAMESPACE (repeatable) or -A")
        version = _cilium_version(cilium_version)
        if from_cluster:
            current, skipped = cluster_policies(kube_context)
        else:
            current, skipped = read_policies(existing or [])
        for message in skipped:
            err.print(f"Note: {message}")
        found = edges(collapse(_load_graph(input_file, store, since)))
        scope = [] if all_namespaces else namespace or []
        options = Options(version=version, l7=l7, default_deny=default_deny, command=_command_line(context))
        proposal = synthesize(found, scope, options)
        comparison = compare(found, current, proposal.policies, scope, version)
        if format is ReportFormat.json:
            sys.stdout.write(orjson.dumps(comparison_json(comparison), option=orjson.OPT_INDENT_2).decode() + "\n")
        elif format is ReportFormat.markdown:
            sys.stdout.write(comparison_markdown(comparison))
        else:
            sys.stdout.write(comparison_text(comparison))
        if exit_code and comparison.changed:
            raise typer.Exit(1)
