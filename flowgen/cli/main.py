"""The flowgen command line: the app, `observe` and `graph`; the policy commands live in
policy_commands.py, what they share in console.py. Only these modules print, read the
environment or exit."""

from __future__ import annotations

import os

# grpc reads this once, when first imported (by flowgen.ingest.dialing below): without it,
# grpc's own INFO lines ("Handshake failed ...") clutter stderr next to flowgen's messages.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

import enum
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
import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from flowgen import __version__
from flowgen.cli.console import (
    InputOption,
    NamespaceOption,
    SinceOption,
    StoreOption,
    default_store,
    err,
    errors_boundary,
    load_graph,
    out,
)
from flowgen.cli.policy import diff, generate, verify
from flowgen.cli.timespec import parse_duration, parse_since, parse_time
from flowgen.errors import InputError, UsageError
from flowgen.graph.builder import BuildOptions, GraphBuilder
from flowgen.graph.diagram import dot, mermaid, peer_label, several_clusters
from flowgen.graph.edge import Edge
from flowgen.graph.frame import collapse, edges, namespace_filter, to_csv
from flowgen.graph.identity import Peer
from flowgen.graph.session import Observation
from flowgen.graph.store import Store, new_run_id
from flowgen.ingest.dialing import Connection
from flowgen.ingest.files import check_inputs, read_files
from flowgen.ingest.hubble import Connected, Event, Lost, NodeStatus, Query, Reconnecting, RelayStream
from flowgen.ingest.jsonlines import JsonLineReader, ReadReport
from flowgen.ingest.summary import FlowSummary

if TYPE_CHECKING:
    pass

app = typer.Typer(
    name="flowgen",
    help="Learn least-privilege CiliumNetworkPolicies from Hubble flows.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)

# How many malformed-line locations the text summary shows.
SHOWN_PROBLEMS = 5
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
    with errors_boundary():
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
    with errors_boundary():
        frame = load_graph(input_file, store, since)
        collapsed = collapse(namespace_filter(frame, namespace or ()))
        if format is GraphFormat.csv:
            sys.stdout.write(to_csv(collapsed))
        else:
            _print_graph(edges(collapsed), format)


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


# Registered here, after observe and graph, so `flowgen --help` lists the pipeline in order.
app.command()(generate)
app.command()(verify)
app.command()(diff)
