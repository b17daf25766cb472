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
from typing import IO, TYPE_CHECKING, Annotated, Protocol

import orjson
import typer

from flowgen.cli.console import (
    InputOption,
    NamespaceOption,
    SinceOption,
    StoreOption,
    default_store,
    err,
    errors_boundary,
    out,
    typed,
    warn,
)
from flowgen.cli.timespec import parse_duration, parse_since, parse_time
from flowgen.errors import InputError, UsageError

if TYPE_CHECKING:
    from flowgen.graph.session import Observation, ObserveSummary
    from flowgen.ingest.dialing import Connection
    from flowgen.ingest.events import Event, Source
    from flowgen.ingest.hubble import RelayStream
    from flowgen.ingest.query import Query

# How many malformed-line locations the text summary shows.
SHOWN_PROBLEMS = 5
LOST_ADVICE = (
    "Hubble dropped events before flowgen saw them: raise its buffer "
    "(Helm hubble.eventBufferCapacity / hubble.eventQueueSize) or narrow the filters"
)


class Engine(enum.StrEnum):
    single = "single"
    dask = "dask"


class OutputFormat(enum.StrEnum):
    auto = "auto"
    text = "text"
    json = "json"


def observe(
    context: typer.Context,
    input_file: InputOption = None,
    server: Annotated[
        str,
        typer.Option(
            "--server",
            envvar=["FLOWGEN_SERVER", "HUBBLE_SERVER"],
            metavar="HOST:PORT",
            help="Hubble Relay address; a tls:// prefix turns TLS on.",
        ),
    ] = "localhost:4245",
    tls: Annotated[bool, typer.Option("--tls", help="Connect with TLS (server certificate verified).")] = False,
    tls_ca_cert_files: Annotated[
        list[Path] | None,
        typer.Option("--tls-ca-cert-files", metavar="FILE", help="PEM CA bundle to verify the server (repeatable)."),
    ] = None,
    tls_client_cert_file: Annotated[
        Path | None, typer.Option("--tls-client-cert-file", metavar="FILE", help="Client certificate for mutual TLS.")
    ] = None,
    tls_client_key_file: Annotated[
        Path | None, typer.Option("--tls-client-key-file", metavar="FILE", help="Client key for mutual TLS.")
    ] = None,
    tls_server_name: Annotated[
        str | None,
        typer.Option("--tls-server-name", metavar="NAME", help="Name to verify, e.g. hubble.hubble-relay.cilium.io."),
    ] = None,
    tls_allow_insecure: Annotated[
        bool, typer.Option("--tls-allow-insecure", help="Do not verify the server certificate (insecure).")
    ] = False,
    timeout: Annotated[
        str, typer.Option("--timeout", metavar="DURATION", help="How long to wait for the connection.")
    ] = "5s",
    duration: Annotated[
        str | None,
        typer.Option(
            "--duration", metavar="DURATION", help="Stop after this long (1h, 30m, 90s); default: until Ctrl-C."
        ),
    ] = None,
    until: Annotated[str | None, typer.Option("--until", metavar="TIME", help="Stop at this time (RFC 3339).")] = None,
    since: SinceOption = None,
    namespace: NamespaceOption = None,
    store: StoreOption = None,
    no_store: Annotated[bool, typer.Option("--no-store", help="Only summarize; write nothing.")] = False,
    checkpoint: Annotated[
        str, typer.Option("--checkpoint", metavar="DURATION", help="Save to the store this often.")
    ] = "60s",
    save_flows: Annotated[
        Path | None,
        typer.Option(
            "--save-flows",
            metavar="FILE",
            help="Also write the raw flows as jsonpb lines (readable by hubble and flowgen).",
        ),
    ] = None,
    max_paths: Annotated[
        int, typer.Option(metavar="N", help="Distinct HTTP paths kept per edge before folding.", min=1)
    ] = 100,
    strict: Annotated[bool, typer.Option(help="Files: stop at the first malformed line (exit 1).")] = False,
    output: Annotated[
        OutputFormat,
        typer.Option(
            "--output", "-o", metavar="FORMAT", help="Summary format: auto (text on a terminal, else JSON), text, json."
        ),
    ] = OutputFormat.auto,
    engine: Annotated[
        Engine,
        typer.Option(
            "--engine",
            metavar="ENGINE",
            help="Files: single (this process) or dask (worker processes; see docs/scaling.md).",
        ),
    ] = Engine.single,
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler",
            metavar="ADDRESS",
            help="--engine dask: a running Dask scheduler (tcp://host:8786); default: a local cluster.",
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers", metavar="N", min=1, help="--engine dask, no --scheduler: worker processes (default: cores)."
        ),
    ] = None,
) -> None:
    """Observe flows (from Hubble Relay or files) and add them to the store.

    Without --input-file, streams from Hubble Relay until --duration, --until
    or Ctrl-C; the graph is checkpointed every --checkpoint and at the end
    (also on SIGTERM). With --input-file, reads the files into the same store.

    Example:

    \b
        flowgen observe -i fixtures/flows/demo.jsonl --store /tmp/flowgen-store
        cilium hubble port-forward &
        flowgen observe --duration 1h -n shop
        hubble observe -o json --last 1000 | flowgen observe -i -
        flowgen observe -i 'archive/**/*.jsonl.gz' --engine dask
    """
    with errors_boundary():
        # Imported here: `flowgen --help` must not wait for pandas, pyarrow and grpc.
        from flowgen.graph.builder import BuildOptions, GraphBuilder  # noqa: PLC0415
        from flowgen.graph.session import Observation  # noqa: PLC0415
        from flowgen.graph.session import observe as run_observation  # noqa: PLC0415
        from flowgen.graph.store import Store, new_run_id  # noqa: PLC0415
        from flowgen.ingest.files import FileSource  # noqa: PLC0415
        from flowgen.ingest.jsonlines import JsonLineReader  # noqa: PLC0415
        from flowgen.ingest.query import Query  # noqa: PLC0415

        now = datetime.now(UTC)
        since_at = parse_since(since, "--since", now) if since else None
        every = parse_duration(checkpoint, "--checkpoint").total_seconds()
        store_at = None if no_store else (store or default_store())
        fmt = (
            output if output is not OutputFormat.auto else (OutputFormat.text if out.is_terminal else OutputFormat.json)
        )
        if input_file:
            live = [flag for name, flag in _LIVE_ONLY.items() if typed(context, name)]
            if live:
                raise UsageError(
                    f"{', '.join(live)} apply to a live relay stream, not to --input-file; "
                    "read files or stream from a relay, one at a time"
                )
        namespaces = frozenset(namespace or ())
        seconds = parse_duration(duration, "--duration").total_seconds() if duration else None
        target = Store(store_at) if store_at else None
        if engine is Engine.dask or scheduler or workers:
            if engine is not Engine.dask:
                raise UsageError("--scheduler and --workers apply to --engine dask")
            if not input_file:
                raise UsageError("--engine dask reads files: pass --input-file (a live stream is read by one process)")
            if scheduler and workers:
                raise UsageError("--workers sizes the local cluster; a --scheduler has its own workers")
            from flowgen.graph.dask_engine import DaskRun  # noqa: PLC0415
            from flowgen.graph.parallel import Filters  # noqa: PLC0415

            run = DaskRun(
                input_file,
                store=target,
                run=new_run_id(now),
                filters=Filters(namespaces, since_at),
                options=BuildOptions(max_paths=max_paths),
                strict=strict,
                scheduler=scheduler,
                workers=workers,
            )
            with _graceful_stop(run):
                _report(run.observe(), fmt)
            return
        with _saving(save_flows) as save:
            source: Source
            if input_file:
                # Lines an earlier run into this store already took are not counted twice.
                resume = target.taken() if target is not None else {}
                source = FileSource(input_file, JsonLineReader(strict=strict, warn=warn), resume=resume)
                described = ", ".join(input_file)
            else:
                from flowgen.ingest.dialing import Connection  # noqa: PLC0415 - grpc, only when streaming

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
                query = Query(tuple(sorted(namespaces)), since_at, parse_time(until, "--until") if until else None)
                source = _relay(connection, query, seconds, save)
                described = f"relay {server}"
            session = Observation(
                GraphBuilder(BuildOptions(max_paths=max_paths)),
                store=target,
                run=new_run_id(now),
                describe=described,
                namespaces=namespaces,
                since=since_at,
                checkpoint_every=every,
            )
            with _graceful_stop(session):
                summary = run_observation(source, session) if input_file else _follow(source, session, seconds)
        _report(summary, fmt)


def _report(summary: ObserveSummary, fmt: OutputFormat) -> None:
    """Print the summary; an interrupted read of files exits 128 + the signal's number."""
    if fmt is OutputFormat.json:
        sys.stdout.write(orjson.dumps(summary.to_json()).decode() + "\n")
    else:
        _print_summary(summary)
    if summary.already_observed and not summary.lines:
        err.print(
            f"Nothing new: {', '.join(summary.inputs)} was observed into this store before "
            f"({summary.already_observed} lines); nothing was written. Use another --store to read it again"
        )
    if summary.stopped_by and summary.inputs:
        # Files are read to their end; an interrupted read is incomplete (the next run resumes it).
        raise typer.Exit(128 + signal.Signals[summary.stopped_by].value)
    if summary.broken:
        from flowgen.graph.session import broken_files  # noqa: PLC0415

        # What was read is stored (the summary says so); the run still failed.
        raise InputError(broken_files(summary.broken))


def _relay(connection: Connection, query: Query, seconds: float | None, save: IO[bytes] | None) -> RelayStream:
    from flowgen.ingest.hubble import RelayStream  # noqa: PLC0415 - grpc, only when streaming

    if connection.warning:
        warn(connection.warning)
    deadline = time.monotonic() + seconds if seconds is not None else None
    return RelayStream(connection, query, deadline=deadline, save=save)


# Options that only make sense for a live stream (parameter name -> flag).
_LIVE_ONLY = {
    "server": "--server",
    "tls": "--tls",
    "tls_ca_cert_files": "--tls-ca-cert-files",
    "tls_client_cert_file": "--tls-client-cert-file",
    "tls_client_key_file": "--tls-client-key-file",
    "tls_server_name": "--tls-server-name",
    "tls_allow_insecure": "--tls-allow-insecure",
    "timeout": "--timeout",
    "duration": "--duration",
    "until": "--until",
    "save_flows": "--save-flows",
}


class _Stoppable(Protocol):
    def stop(self, reason: str) -> None: ...


@contextmanager
def _graceful_stop(session: _Stoppable) -> Iterator[None]:
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


def _follow(stream: Source, session: Observation, seconds: float | None) -> ObserveSummary:
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

    from flowgen.graph.session import observe as run_observation  # noqa: PLC0415

    if not err.is_terminal:
        return run_observation(stream, session, _notice)
    from rich.console import Console  # noqa: PLC0415 - the progress display, on a terminal only
    from rich.live import Live  # noqa: PLC0415

    view = Console(stderr=True, highlight=False, markup=False)
    with Live(status(), console=view, refresh_per_second=2, transient=True) as live:

        def update(event: Event | None) -> None:
            _notice(event)
            live.update(status())

        return run_observation(stream, session, update)


def _notice(event: Event | None) -> None:
    from flowgen.ingest.events import Connected, Lost, NodeStatus, Reconnecting  # noqa: PLC0415

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
    if s.already_observed:
        out.print(f"  resumed:    after {s.already_observed} lines an earlier run into this store took")
    filtered = f" ({s.filtered_out} outside -n)" if s.filtered_out else ""
    out.print(f"  kept:       {s.kept}{filtered}")
    out.print(f"  skipped:    {_counts(s.skipped)}")
    out.print(f"  malformed:  {s.malformed}")
    for broken in s.broken:
        out.print(f"  broken off: {broken}")
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
    if s.over_long:
        values = ", ".join(f"{count} {kind}" for kind, count in sorted(s.over_long.items()))
        out.print(f"  over-long values skipped: {values} (longer than any real one; not used as evidence)")
    if s.folded_paths:
        out.print(f"  folded:     {s.folded_paths} requests had their HTTP path folded (see flowgen graph)")
    where = f"saved to {s.checkpoint}" if s.checkpoint else "not saved (--no-store)" if s.store is None else "not saved"
    out.print(f"  graph:      {s.edges} edges, {where}")
    if s.stopped_by:
        kept = "last checkpoint kept" if s.checkpoint else "nothing written"
        out.print(f"  stopped by: {s.stopped_by} ({kept})")
