"""`flowgen observe`: flows from Hubble Relay or files into the store, and a summary of what came in."""

from __future__ import annotations

import enum
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import IO, Annotated

import orjson
import typer
from rich.live import Live

from flowgen.cli.console import (
    InputOption,
    NamespaceOption,
    SinceOption,
    StoreOption,
    default_store,
    err,
    errors_boundary,
    out,
    warn,
)
from flowgen.cli.timespec import parse_duration, parse_since, parse_time
from flowgen.errors import InputError, UsageError
from flowgen.graph.builder import BuildOptions, GraphBuilder
from flowgen.graph.session import Observation, ObserveSummary
from flowgen.graph.session import observe as run_observation
from flowgen.graph.store import Store, new_run_id
from flowgen.ingest.dialing import Connection
from flowgen.ingest.events import Connected, Event, Lost, NodeStatus, Reconnecting, Source
from flowgen.ingest.files import FileSource
from flowgen.ingest.hubble import RelayStream
from flowgen.ingest.jsonlines import JsonLineReader
from flowgen.ingest.query import Query

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
        fmt = (
            output if output is not OutputFormat.auto else (OutputFormat.text if out.is_terminal else OutputFormat.json)
        )
        if input_file and (save_flows or duration or until):
            raise UsageError("--save-flows, --duration and --until apply to live streams, not to --input-file")
        namespaces = frozenset(namespace or ())
        seconds = parse_duration(duration, "--duration").total_seconds() if duration else None
        with _saving(save_flows) as save:
            source: Source
            if input_file:
                source = FileSource(input_file, JsonLineReader(strict=strict, warn=warn))
                described = ", ".join(input_file)
            else:
                connection = Connection(
                    server=server,
                    tls=tls,
                    ca_cert_files=tuple(str(p) for p in tls_ca_cert_files or ()),
                    client_cert_file=str(tls_client_cert_file) if tls_client_cert_file else None,
                    client_key_file=str(tls_client_key_file) if tls_client_key_file else None,
                    server_name=tls_server_name,
                    allow_insecure=tls_allow_insecure,
                    timeout=parse_duration(timeout, "--timeout").total_seconds(),
                )
                if connection.warning:
                    warn(connection.warning)
                query = Query(
                    namespaces=tuple(sorted(namespaces)),
                    since=since_at,
                    until=parse_time(until, "--until") if until else None,
                )
                deadline = time.monotonic() + seconds if seconds is not None else None
                source = RelayStream(connection, query, deadline=deadline, save=save)
                described = f"relay {server}"
            session = Observation(
                GraphBuilder(BuildOptions(max_paths=max_paths)),
                store=Store(store_at) if store_at else None,
                run=new_run_id(now),
                describe=described,
                namespaces=namespaces,
                since=since_at,
                checkpoint_every=every,
            )
            with _graceful_stop(session):
                if isinstance(source, RelayStream):
                    summary = _follow(source, session, seconds)
                else:
                    summary = run_observation(source, session)
        if fmt is OutputFormat.json:
            sys.stdout.write(orjson.dumps(summary.to_json()).decode() + "\n")
        else:
            _print_summary(summary)


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


def _follow(stream: RelayStream, session: Observation, seconds: float | None) -> ObserveSummary:
    """Run the live stream, printing what the relay says, with a progress display on a terminal."""
    started = time.monotonic()

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

    if not err.is_terminal:
        return run_observation(stream, session, _notice)
    with Live(status(), console=err, refresh_per_second=2, transient=True) as live:

        def update(event: Event | None) -> None:
            _notice(event)
            live.update(status())

        return run_observation(stream, session, update)


def _notice(event: Event | None) -> None:
    if isinstance(event, Reconnecting):
        err.print(f"Relay stream lost ({event.error}); reconnecting in {event.delay:.1f}s (attempt {event.attempt})")
    elif isinstance(event, Connected):
        resumed = f", resuming from {event.resumed_from.isoformat()}" if event.resumed_from else ""
        version = f" ({event.version})" if event.version else ""
        err.print(f"Connected to {event.server}{version}{resumed}")
    elif isinstance(event, NodeStatus) and event.state != "NODE_CONNECTED":
        err.print(f"Nodes {event.state.lower().removeprefix('node_')}: {', '.join(event.nodes)} {event.message}")
    elif isinstance(event, Lost):
        err.print(f"Lost {event.count} events ({event.source}). {LOST_ADVICE}")


def _counts(counter: dict[str, int]) -> str:
    return ", ".join(f"{name} {count}" for name, count in sorted(counter.items())) or "none"


def _print_summary(s: ObserveSummary) -> None:
    if s.inputs:
        out.print(f"Read {s.lines} records from {len(s.inputs)} input(s): {s.flows} flows")
    else:
        out.print(f"Received {s.flows} flows from Hubble Relay ({s.reconnects} reconnects)")
    filtered = f" ({s.filtered_out} outside -n)" if s.filtered_out else ""
    out.print(f"  kept:       {s.kept}{filtered}")
    out.print(f"  skipped:    {_counts(s.skipped)}")
    out.print(f"  malformed:  {s.malformed}")
    for problem in s.malformed_examples[:SHOWN_PROBLEMS]:
        out.print(f"              {problem}")
    if s.malformed > SHOWN_PROBLEMS:
        out.print(f"              ... and {s.malformed - SHOWN_PROBLEMS} more")
    total = sum(s.lost_events.values())
    out.print(f"  lost:       {total}" + (f" ({_counts(s.lost_events)})" if total else ""))
    if total:
        out.print(f"              {LOST_ADVICE}")
    if s.unknown_fields:
        out.print(f"  ignored:    {', '.join(s.unknown_fields)} (unknown to this flowgen)")
    if s.first and s.last:
        out.print(f"  time:       {s.first.isoformat()} .. {s.last.isoformat()} ({s.last - s.first})")
    out.print(f"  namespaces: {_counts(s.namespaces)}")
    out.print(f"  verdicts:   {_counts(s.verdicts)}")
    if s.drop_reasons:
        out.print(f"  drops:      {_counts(s.drop_reasons)}")
    out.print(f"  nodes:      {len(s.nodes)}")
    out.print(f"  evidence:   {_counts(s.evidence)} ({s.repeated} repeated sightings of a connection)")
    out.print(f"  not used:   {_counts(s.not_evidence)}")
    if s.folded_paths:
        out.print(f"  folded:     {s.folded_paths} requests had their HTTP path folded (see flowgen graph)")
    where = f"saved to {s.checkpoint}" if s.checkpoint else "not saved (--no-store)"
    out.print(f"  graph:      {s.edges} edges, {where}")
    if s.stopped_by:
        out.print(f"  stopped by: {s.stopped_by} (last checkpoint kept)")
