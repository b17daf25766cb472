"""What a proposal says besides its policies: the notes for a reviewer, and the evidence
behind a rule described in words.

A note is something the evidence did not turn into a rule, or a rule a reviewer should
look at (see docs/generate.md for each kind).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flowgen.graph.edge import Edge
from flowgen.graph.evidence import L7Kind
from flowgen.policy.model import Policy


class NoteKind(enum.StrEnum):
    DENIED = "policy-denied"
    NO_LABELS = "no-usable-labels"
    AMBIGUOUS = "indistinguishable"
    UNKNOWN_PEER = "unknown-peer"
    NOT_EXPRESSED = "not-expressed"
    FOLDED_PATHS = "folded-paths"
    COLLAPSED_PATHS = "collapsed-paths"
    COLLAPSED_NAMES = "collapsed-names"
    KAFKA = "kafka-omitted"
    LITTLE_EVIDENCE = "little-evidence"
    NO_DNS_SERVER = "no-dns-server"
    DNS_NAMES_UNKNOWN = "dns-names-unknown"
    WIDE_DNS = "wide-dns"
    HOST = "host-probes"
    AUDIT = "audit-evidence"
    OPEN = "direction-open"
    WORLD_INGRESS = "world-ingress"
    HOST_NETWORK = "host-network-pod"
    DNS_SERVER = "dns-server"
    SYSTEM = "system-namespace"
    NO_ALLOWANCE = "no-allowance"
    BAD_PORT = "invalid-port"
    UNUSABLE_VALUE = "unusable-value"
    REJECTED = "rejected-policy"
    WORLD_POD_RESOLVED = "world-pod-resolved"
    WORLD_POD_UNRESOLVED = "world-pod-unresolved"


@dataclass(frozen=True, slots=True, order=True)
class Note:
    """Something the evidence did not turn into a rule, or a rule a reviewer should look at."""

    kind: NoteKind
    subject: str
    message: str
    flows: int = 0


@dataclass(frozen=True, slots=True)
class Proposal:
    policies: tuple[Policy, ...]
    notes: tuple[Note, ...]


@dataclass(slots=True)
class Evidence:
    """Counts behind a rule: connections (L3/L4 evidence) and L7 requests are counted
    apart, because one connection usually carries both kinds of evidence."""

    first: datetime | None = None
    last: datetime | None = None
    nodes: set[str] = field(default_factory=set)
    # Flows per (peers, port, L7): an audited connection is also seen as forwarded, a separate
    # edge with the same flows; counting the largest keeps it one connection.
    _counts: dict[tuple[object, ...], tuple[bool, int]] = field(default_factory=dict)

    @classmethod
    def of(cls, edges: Iterable[Edge]) -> Evidence:
        """The evidence of `edges`; an edge given twice counts once (see `_counts`)."""
        evidence = cls()
        for edge in edges:
            evidence.add(edge)
        return evidence

    def add(self, edge: Edge) -> None:
        key = (edge.source, edge.destination, edge.protocol, edge.port, edge.l7)
        _l7, flows = self._counts.get(key, (False, 0))
        self._counts[key] = (edge.l7.kind is not L7Kind.NONE, max(flows, edge.flows))
        self.first = edge.first if self.first is None else min(self.first, edge.first)
        self.last = edge.last if self.last is None else max(self.last, edge.last)
        self.nodes.update(edge.nodes)

    @property
    def connections(self) -> int:
        return sum(flows for l7, flows in self._counts.values() if not l7)

    @property
    def requests(self) -> int:
        return sum(flows for l7, flows in self._counts.values() if l7)

    @property
    def flows(self) -> int:
        return max(self.connections, self.requests)

    @property
    def span(self) -> timedelta:
        return self.last - self.first if self.first is not None and self.last is not None else timedelta(0)

    def describe(self, *, counts: bool = True) -> str:
        """The evidence in words. Files get no counts (`counts=False`): counts depend on how
        often the same flow was read and on its order, and generated files must not."""
        parts = [f"{self.connections} connections"] if counts and self.connections else []
        parts += [f"{self.requests} requests"] if counts and self.requests else []
        if self.first is not None and self.last is not None:
            parts.append(f"seen {self.first:%Y-%m-%d %H:%M} .. {self.last:%Y-%m-%d %H:%M} UTC")
        if self.nodes:
            parts.append(f"on {len(self.nodes)} node{'s' if len(self.nodes) != 1 else ''}")
        return ", ".join(parts) or "no flows"


def duration_text(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
