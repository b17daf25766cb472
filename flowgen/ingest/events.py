"""What a flow source yields, and the one seam every source fits.

Files (flowgen.ingest.files) and the live relay stream (flowgen.ingest.hubble)
both yield `Event`s: `Flow` values, plus whatever else the source says (Hubble
lost events; node status, connects and reconnects on a live stream; an `Idle`
tick while nothing arrives). Whoever consumes them (the observe session) counts
them in one place, whatever the source.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeAlias

from flowgen.ingest.flow import Flow


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """The relay reports nodes connecting or failing; `state` is a relay.NodeState name."""

    state: str
    nodes: tuple[str, ...]
    message: str


@dataclass(frozen=True, slots=True)
class Lost:
    """Hubble lost `count` events before they reached flowgen (`source` is a LostEventSource
    name, ref hubble-api.md §5.5): in a live stream, or as a lost_events line in a file."""

    source: str
    count: int


@dataclass(frozen=True, slots=True)
class Connected:
    """Connected to `server`; `resumed_from` is the `since` asked for when this is a reconnect."""

    server: str
    version: str
    resumed_from: datetime | None


@dataclass(frozen=True, slots=True)
class Reconnecting:
    """The stream broke (`error`); dialing again after `delay` seconds (attempt counts from 1)."""

    error: str
    attempt: int
    delay: float


@dataclass(frozen=True, slots=True)
class Idle:
    """Nothing arrived for a tick: a chance to refresh a display or save progress."""


Event: TypeAlias = Flow | NodeStatus | Lost | Connected | Reconnecting | Idle


class Source(Protocol):
    """Where flows come from: files or a live stream. Iterate `events()` once."""

    def events(self) -> Iterator[Event]:
        """Flows and notices until the source ends or `stop()` is called."""
        ...

    def stop(self) -> None:
        """Make events() end soon; safe from a signal handler."""
        ...
