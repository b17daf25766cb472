"""One `observe` run: events from a source (files or a live relay stream) in, graph checkpoints out.

Every source fits one seam (flowgen.ingest.events.Source), so there is one loop:
each flow passes the `--since` and namespace filters, is counted in the input
summary and goes into the GraphBuilder; lost events, node status and reconnects
are counted here and nowhere else. Every `checkpoint_every` seconds, and once
more at the end, the run's graph so far is written to the store (atomically,
see flowgen.graph.store). `stop()` may be called from a signal handler: it only
sets a flag (and stops the source), and the loop ends at the next event, so a
checkpoint is never interrupted half-way and the final one is always taken.

`observe()` composes a whole run and returns its `ObserveSummary`.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from flowgen.errors import InputError
from flowgen.graph.builder import BuildReport, GraphBuilder
from flowgen.graph.evidence import Use
from flowgen.graph.store import Store
from flowgen.ingest.events import Connected, Event, Idle, Lost, NodeStatus, Reconnecting, Source
from flowgen.ingest.files import FileSource, Taken
from flowgen.ingest.flow import Flow
from flowgen.ingest.jsonlines import ReadReport
from flowgen.ingest.summary import FlowSummary, count

# How often the loop looks at the clock (checkpoints, progress), in seconds.
_TICK = 0.5


@dataclass
class Counters:
    """What the source said besides flows: live numbers for progress and the summary."""

    # Flow events received, before any filter.
    flows: int = 0
    # Flows older than --since, left out.
    before_since: int = 0
    lost: Counter[str] = field(default_factory=Counter)
    nodes_connected: set[str] = field(default_factory=set)
    nodes_unavailable: set[str] = field(default_factory=set)
    reconnects: int = 0
    checkpoints: int = 0


class Observation:
    """Feeds a source's events into a builder and checkpoints the graph into a store (when one is given).

    `progress` is called at most every half second, and once per event that is not a flow,
    with that event (None for a plain tick)."""

    def __init__(
        self,
        builder: GraphBuilder,
        *,
        store: Store | None = None,
        run: str = "",
        describe: str = "",
        namespaces: frozenset[str] = frozenset(),
        since: datetime | None = None,
        checkpoint_every: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.builder = builder
        self.store = store
        self.run = run
        self.describe = describe
        self.counters = Counters()
        self.summary = FlowSummary()
        self.namespaces = namespaces
        self.since = since
        self.started = now()
        self.stop_reason = ""
        self.last_checkpoint: Path | None = None
        self._every = checkpoint_every
        self._clock = clock
        self._now = now
        self._due = clock() + checkpoint_every
        self._source: Source | None = None
        self._meta: Callable[[], dict[str, object]] = dict

    @property
    def denied(self) -> int:
        return self.builder.report.evidence[Use.DENIED]

    def stop(self, reason: str) -> None:
        """Ask the loop to end (safe from a signal handler)."""
        self.stop_reason = self.stop_reason or reason
        if self._source is not None:
            self._source.stop()

    def read(
        self,
        source: Source,
        progress: Callable[[Event | None], None] | None = None,
        *,
        sink: Callable[[Flow], object] | None = None,
    ) -> None:
        """Take events from `source` until it ends or stop() is called. The flows that pass the
        filters go to the builder, or to `sink` when one is given (flowgen.graph.parallel)."""
        self._source = source
        add, counters, summary = sink or self.builder.add, self.counters, self.summary
        namespaces, since = self.namespaces, self.since
        clock, tick = self._clock, self._clock() + _TICK
        events = source.events()
        try:
            for event in events:
                if isinstance(event, Flow):
                    counters.flows += 1
                    if since is not None and event.time is not None and event.time < since:
                        counters.before_since += 1
                    elif count(event, summary, namespaces):
                        add(event)
                else:
                    self._notice(event)
                    if progress is not None:
                        progress(event)
                if self.stop_reason:
                    break
                if clock() >= tick:
                    tick = clock() + _TICK
                    self._maybe_checkpoint()
                    if progress is not None:
                        progress(None)
        finally:
            # Closed here, not whenever it is collected: a source counts what it read when it closes.
            close = getattr(events, "close", None)
            if close is not None:
                close()
            self._source = None

    def _notice(self, event: Event) -> None:
        counters = self.counters
        if isinstance(event, Lost):
            counters.lost[event.source] += event.count
        elif isinstance(event, NodeStatus):
            for node in event.nodes:
                if event.state == "NODE_CONNECTED":
                    counters.nodes_connected.add(node)
                    counters.nodes_unavailable.discard(node)
                else:
                    counters.nodes_unavailable.add(node)
                    counters.nodes_connected.discard(node)
        elif isinstance(event, Connected):
            # Count reconnections that worked, not attempts.
            counters.reconnects += event.resumed_from is not None
        elif not isinstance(event, Reconnecting | Idle):
            raise TypeError(f"unexpected source event {event!r}")

    def _maybe_checkpoint(self) -> None:
        if self.store is not None and self._clock() >= self._due:
            self.checkpoint()

    def checkpoint(self, extra: dict[str, object] | None = None) -> Path | None:
        """Write the run's graph so far (no-op without a store)."""
        self._due = self._clock() + self._every
        if self.store is None:
            return None
        meta = run_meta(
            self.started,
            self._now(),
            self.builder.report,
            counters=self.counters,
            describe=self.describe,
            namespaces=self.namespaces,
        )
        meta.update({**self._meta(), **(extra or {})})
        self.last_checkpoint = self.store.write_run(self.run, self.builder.graph(), meta)
        self.counters.checkpoints += 1
        return self.last_checkpoint

    def with_meta(self, meta: Callable[[], dict[str, object]]) -> None:
        """More metadata for every checkpoint (what the source read so far)."""
        self._meta = meta


def run_meta(
    started: datetime,
    updated: datetime,
    built: BuildReport,
    *,
    counters: Counters,
    describe: str,
    namespaces: frozenset[str],
) -> dict[str, object]:
    """What a run's checkpoint records besides its graph (flowgen.graph.store)."""
    return {
        "started": started.isoformat(),
        "updated": updated.isoformat(),
        "flows": built.flows,
        "evidence": _plain(built.evidence),
        "skipped": _plain(built.skipped),
        "over_long": _plain(built.over_long),
        "lost_events": _plain(counters.lost),
        "source": describe,
        "namespaces": sorted(namespaces),
    }


def files_meta(read: ReadReport, taken: Iterable[Taken]) -> dict[str, object]:
    """What a run from files records of them: what was read, and how far each file was taken
    (a later run into the same store resumes after that)."""
    return {
        "read": {"lines": read.lines, "malformed": read.malformed, "skipped": _plain(read.skipped)},
        "inputs": [_taken(each) for each in taken],
    }


@dataclass(frozen=True, slots=True)
class ObserveSummary:
    """What one observe run read and built: what `flowgen observe` prints (text or one JSON line)."""

    # The files read; empty for a live stream.
    inputs: tuple[str, ...]
    # Records read from the files (lines that were not blank).
    lines: int
    flows: int
    # Flows that passed --since and -n, and those -n left out.
    kept: int
    filtered_out: int
    # Non-flow records counted and skipped, by kind.
    skipped: dict[str, int]
    malformed: int
    # "file line N: reason" for the first malformed records.
    malformed_examples: tuple[str, ...]
    lost_events: dict[str, int]
    unknown_fields: tuple[str, ...]
    first: datetime | None
    last: datetime | None
    namespaces: dict[str, int]
    verdicts: dict[str, int]
    drop_reasons: dict[str, int]
    nodes: tuple[str, ...]
    nodes_unavailable: tuple[str, ...]
    reconnects: int
    evidence: dict[str, int]
    not_evidence: dict[str, int]
    # Evidence events describing a connection (or request) already counted.
    repeated: int
    folded_paths: int
    edges: int
    store: str | None
    checkpoint: str | None
    stopped_by: str | None
    saved_flows: int
    # Lines of the files skipped because an earlier run into the same store took them.
    already_observed: int = 0
    # Values over their length cap, by kind (flowgen.graph.evidence.TooLong): their flows were not
    # used as evidence (DNS answers: not used to name addresses).
    over_long: dict[str, int] = field(default_factory=dict)
    # Files that broke off before their end, with where and why (what was read before is in the graph).
    broken: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        """The summary as JSON values (times in RFC 3339), keys in a fixed order."""
        return {
            "inputs": list(self.inputs),
            "lines": self.lines,
            "flows": self.flows,
            "kept": self.kept,
            "filtered_out": self.filtered_out,
            "skipped": self.skipped,
            "malformed": self.malformed,
            "malformed_examples": list(self.malformed_examples),
            "lost_events": self.lost_events,
            "unknown_fields": list(self.unknown_fields),
            "first": self.first.isoformat() if self.first else None,
            "last": self.last.isoformat() if self.last else None,
            "namespaces": self.namespaces,
            "verdicts": self.verdicts,
            "drop_reasons": self.drop_reasons,
            "nodes": list(self.nodes),
            "nodes_unavailable": list(self.nodes_unavailable),
            "reconnects": self.reconnects,
            "evidence": self.evidence,
            "not_evidence": self.not_evidence,
            "over_long": self.over_long,
            "repeated": self.repeated,
            "folded_paths": self.folded_paths,
            "edges": self.edges,
            "store": self.store,
            "checkpoint": self.checkpoint,
            "stopped_by": self.stopped_by,
            "saved_flows": self.saved_flows,
            "already_observed": self.already_observed,
            "broken": list(self.broken),
        }


def observe(
    source: Source, session: Observation, progress: Callable[[Event | None], None] | None = None
) -> ObserveSummary:
    """A whole observe run: read the source into the session, take the last checkpoint, summarize.

    Files that hold no flow at all are an error (nothing is written). Files an earlier run into
    the same store read completely are skipped; when nothing new was read, nothing is written."""
    files = source if isinstance(source, FileSource) else None
    if files is not None:
        session.with_meta(lambda: files_meta(files.report, files.taken()))
    session.read(source, progress)
    if (
        files is not None
        and not session.stop_reason
        and nothing_read(session.counters.flows, files.paths, files.report, files.skipped, files.broken)
    ):
        return summarize(session, source)
    session.checkpoint()
    return summarize(session, source)


def nothing_read(flows: int, paths: Sequence[str], read: ReadReport, already: int, broken: Sequence[str]) -> bool:
    """Whether a read of files gave no flow to store. That is an error when they broke off or hold
    no flow at all; it is not when an earlier run into the same store took every line (`already`):
    then there is nothing new to write."""
    if flows:
        return False
    if broken:
        raise InputError(broken_files(broken))
    if read.lines or not already:
        raise InputError(no_flows(paths, read))
    return True


def broken_files(broken: Sequence[str]) -> str:
    """The error for files that broke off before their end."""
    return (
        f"{'; '.join(broken)}. The file may be cut short (still being written?) or not gzip; "
        "a later run into the same store resumes after the lines read"
    )


def no_flows(paths: Sequence[str], read: ReadReport) -> str:
    """The error for files in which no record is a flow."""
    what = [f"{read.lines} records read"]
    if read.malformed:
        what.append(f"{read.malformed} malformed")
    what.extend(f"{count} {kind}" for kind, count in sorted(read.skipped.items()))
    return (
        f"no Hubble flow in {', '.join(paths)} ({', '.join(what)}); nothing was stored. "
        "Pass files written by `hubble observe -o json` or the Hubble exporter"
    )


def _taken(taken: Taken) -> dict[str, object]:
    return {
        "input": taken.input,
        "fingerprint": taken.fingerprint,
        "position": taken.position,
        "complete": taken.complete,
    }


def summarize(session: Observation, source: Source) -> ObserveSummary:
    """The summary of what `session` took from `source` so far."""
    files = source if isinstance(source, FileSource) else None
    return tally(
        session.counters,
        session.summary,
        session.builder.report,
        edges=session.builder.graph().edge_count(),
        read=files.report if files else None,
        inputs=files.paths if files else (),
        already_observed=files.skipped if files else 0,
        broken=tuple(files.broken) if files else (),
        store=str(session.store.root) if session.store is not None else None,
        checkpoint=str(session.last_checkpoint) if session.last_checkpoint else None,
        stopped_by=session.stop_reason or None,
        saved_flows=_saved(source),
    )


def tally(
    counters: Counters,
    summary: FlowSummary,
    built: BuildReport,
    *,
    edges: int,
    read: ReadReport | None,
    inputs: tuple[str, ...],
    already_observed: int,
    store: str | None,
    checkpoint: str | None,
    stopped_by: str | None,
    saved_flows: int = 0,
    broken: tuple[str, ...] = (),
) -> ObserveSummary:
    """The summary of a run from its parts (one session's, or those a parallel run added up)."""
    return ObserveSummary(
        inputs=inputs,
        lines=read.lines if read else 0,
        flows=counters.flows,
        kept=summary.kept,
        filtered_out=summary.filtered_out,
        skipped=_plain(read.skipped) if read else {},
        malformed=read.malformed if read else 0,
        malformed_examples=tuple(str(p) for p in read.problems) if read else (),
        lost_events=_plain(counters.lost),
        unknown_fields=tuple(read.unknown_fields) if read else (),
        first=summary.first,
        last=summary.last,
        namespaces=_plain(summary.namespaces),
        verdicts=_plain(summary.verdicts),
        drop_reasons=_plain(summary.drop_reasons),
        nodes=tuple(sorted(summary.nodes | counters.nodes_connected)),
        nodes_unavailable=tuple(sorted(counters.nodes_unavailable)),
        reconnects=counters.reconnects,
        evidence=_plain(built.evidence),
        not_evidence=_plain(built.skipped),
        repeated=built.repeated,
        folded_paths=sum(built.folded.values()),
        edges=edges,
        store=store,
        checkpoint=checkpoint,
        stopped_by=stopped_by,
        saved_flows=saved_flows,
        already_observed=already_observed,
        over_long=_plain(built.over_long),
        broken=broken,
    )


def _saved(source: Source) -> int:
    """Flows a live stream also wrote to --save-flows (files save none). Looked up by attribute: this
    module does not import the relay client (grpc), which reading files does not need."""
    stats = getattr(source, "stats", None)
    return int(getattr(stats, "saved", 0))


def _plain(counter: Counter[str] | dict[str, int]) -> dict[str, int]:
    """Counts with plain string keys (enum keys would not serialize), sorted."""
    return {str(key): count for key, count in sorted(counter.items())}
