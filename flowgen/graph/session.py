"""One `observe` run: flows in (files or a live relay stream), graph checkpoints out.

The session owns the loop that both inputs share: each flow goes into the
GraphBuilder; every `checkpoint_every` seconds, and once more at the end, the
run's graph so far is written to the store (atomically, see flowgen.graph.store).
`stop()` may be called from a signal handler: it only sets a flag (and
cancels a live stream), and the loop ends at the next flow or tick, so a
checkpoint is never interrupted half-way and the final one is always taken.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from flowgen.graph.builder import GraphBuilder
from flowgen.graph.evidence import Use
from flowgen.graph.store import Store
from flowgen.ingest.flow import Flow
from flowgen.ingest.hubble import Connected, Event, Idle, Lost, NodeStatus, Received, Reconnecting, RelayStream
from flowgen.ingest.proto import response_line
from flowgen.ingest.summary import FlowSummary, summarize

# How many file flows pass between looks at the clock (checkpoints, stop flag is per flow).
_CLOCK_EVERY = 4096


@dataclass
class Counters:
    """Live numbers for the progress display and the final summary."""

    lost: Counter[str] = field(default_factory=Counter)
    nodes_connected: set[str] = field(default_factory=set)
    nodes_unavailable: set[str] = field(default_factory=set)
    reconnects: int = 0
    checkpoints: int = 0
    saved_flows: int = 0


class Observation:
    """Feeds flows into a builder and checkpoints the graph into a store (when one is given)."""

    def __init__(
        self,
        builder: GraphBuilder,
        *,
        store: Store | None,
        run: str,
        meta: Callable[[], dict[str, object]],
        summary: FlowSummary | None = None,
        namespaces: frozenset[str] = frozenset(),
        checkpoint_every: float = 60.0,
        save: IO[bytes] | None = None,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.builder = builder
        self.store = store
        self.run = run
        self.counters = Counters()
        self.summary = summary if summary is not None else FlowSummary()
        self.namespaces = namespaces
        self.started = now()
        self.stop_reason = ""
        self._meta = meta
        self._every = checkpoint_every
        self._save = save
        self._clock = clock
        self._now = now
        self._due = clock() + checkpoint_every
        self._stream: RelayStream | None = None
        self.last_checkpoint: Path | None = None

    @property
    def stopping(self) -> bool:
        return bool(self.stop_reason)

    def stop(self, reason: str) -> None:
        """Ask the loop to end (safe from a signal handler)."""
        self.stop_reason = self.stop_reason or reason
        if self._stream is not None:
            self._stream.stop()

    def read(self, flows: Iterable[Flow]) -> None:
        """Take flows from files until they end or stop() is called."""
        add = self.builder.add
        for count, flow in enumerate(summarize(flows, self.summary, self.namespaces), start=1):
            add(flow)
            if self.stop_reason:
                break
            if count % _CLOCK_EVERY == 0:
                self._maybe_checkpoint()

    def follow(self, stream: RelayStream, on_event: Callable[[Event], None] = lambda _event: None) -> None:
        """Take events from a live stream until it ends (deadline, until, stop())."""
        self._stream = stream
        counters = self.counters
        try:
            for event in stream.events():
                if isinstance(event, Received):
                    for flow in summarize((event.flow,), self.summary, self.namespaces):
                        self.builder.add(flow)
                    if self._save is not None:
                        self._save.write(response_line(event.response))
                        counters.saved_flows += 1
                elif isinstance(event, Lost):
                    counters.lost[event.source] += event.count
                elif isinstance(event, NodeStatus):
                    _node_status(counters, event)
                elif isinstance(event, Connected):
                    # Count reconnections that worked, not attempts.
                    counters.reconnects += event.resumed_from is not None
                elif not isinstance(event, Reconnecting | Idle):
                    raise TypeError(f"unexpected stream event {event!r}")
                on_event(event)
                self._maybe_checkpoint()
        finally:
            self._stream = None

    def _maybe_checkpoint(self) -> None:
        if self.store is not None and self._clock() >= self._due:
            self.checkpoint()

    def checkpoint(self) -> Path | None:
        """Write the run's graph so far (no-op without a store)."""
        self._due = self._clock() + self._every
        if self._save is not None:
            self._save.flush()
        if self.store is None:
            return None
        meta = {
            "started": self.started.isoformat(),
            "updated": self._now().isoformat(),
            "flows": self.builder.report.flows,
            "evidence": _plain(self.builder.report.evidence),
            "skipped": _plain(self.builder.report.skipped),
            "lost_events": _plain(self.counters.lost),
            **self._meta(),
        }
        self.last_checkpoint = self.store.write_run(self.run, self.builder.frame(), meta)
        self.counters.checkpoints += 1
        return self.last_checkpoint

    @property
    def denied(self) -> int:
        return self.builder.report.evidence[Use.DENIED]


def _plain(counter: Counter[str]) -> dict[str, int]:
    """A counter with plain string keys (enum keys would not serialize)."""
    return {str(key): count for key, count in sorted(counter.items())}


def _node_status(counters: Counters, event: NodeStatus) -> None:
    for node in event.nodes:
        if event.state == "NODE_CONNECTED":
            counters.nodes_connected.add(node)
            counters.nodes_unavailable.discard(node)
        else:
            counters.nodes_unavailable.add(node)
            counters.nodes_connected.discard(node)
