"""What every piece of synthesis reads, and what each returns.

- `Context`: the options and the facts drawn once from all the edges (the settled
  evidence grouped by side, the workload selectors, the DNS servers, the display
  names); `synth.survey` builds it, nothing changes it afterwards.
- `Rules`: rule entries together with the notes a reviewer needs about them. Each
  piece returns both instead of adding notes to shared state, so a piece can be
  called, tested and reasoned about alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from flowgen.cilium import CLUSTER_KEY, NAMESPACE_KEY
from flowgen.graph.edge import Edge
from flowgen.graph.identity import Peer, PeerKind
from flowgen.policy.formats import label_value_problem, namespace_problem
from flowgen.policy.model import Direction, PeerRule, Selector
from flowgen.synth.notes import Note, NoteKind
from flowgen.synth.options import Options
from flowgen.synth.patterns import Selectors

# How a rule's comment and notes name the peer's side: "to" what a workload reaches, "from" who reaches it.
PREPOSITION: Final[Mapping[Direction, str]] = {Direction.EGRESS: "to", Direction.INGRESS: "from"}
# Why a pod seen only with the world identity gets no rule (see flowgen.synth.worldpods).
WORLD_POD_UNRESOLVED: Final = (
    "Hubble gave this pod the world identity (Cilium's IP cache had not learned its address) and it never "
    "appeared with an identity of its own in the window; no toCIDR for its address, since CIDR rules never "
    "select pods: observe until it shows up with its own identity, or allow it by its labels by hand"
)


@dataclass(frozen=True, slots=True)
class Context:
    options: Options
    # The evidence for an allow: allowed or audit edges that no policy drop contradicts.
    edges: tuple[Edge, ...]
    # `edges` by their source and by their destination, each in the order of `edges`.
    by_source: Mapping[Peer, tuple[Edge, ...]]
    by_destination: Mapping[Peer, tuple[Edge, ...]]
    # Selectors of every workload seen on any edge, settled or not (a denied peer still needs telling apart).
    selectors: Selectors
    # Peers that answered DNS (see dns.find_servers).
    dns_servers: frozenset[Peer]
    # A workload's display name (its owner); the largest one when the flows showed several.
    names: Mapping[Peer, str]

    def label(self, peer: Peer) -> str:
        """How notes and comments name a peer: `namespace/owner` for a workload, else its name or kind."""
        if peer.kind is PeerKind.WORKLOAD:
            return f"{peer.namespace}/{self.names.get(peer) or ','.join(peer.labels)}"
        if peer.kind is PeerKind.POD:
            return f"pod {peer.namespace}/{peer.name}"
        return peer.name or str(peer.kind)

    def unselectable(self, peer: Peer) -> tuple[NoteKind, str] | None:
        """Why no selector names exactly this workload (and the kind of note that says so), or None."""
        if peer.kind is PeerKind.POD:
            return NoteKind.WORLD_POD_UNRESOLVED, WORLD_POD_UNRESOLVED
        if not peer.usable or not self.selectors.by_peer.get(peer):
            reason = f"no label tells it apart: a selector would name every pod of namespace {peer.namespace}"
            return NoteKind.NO_LABELS, reason
        problem = namespace_problem(peer.namespace)
        if problem:
            return NoteKind.UNUSABLE_VALUE, f"its namespace {peer.namespace!r} {problem}"
        problem = label_value_problem(peer.cluster) if peer.cluster else None
        if problem:
            return NoteKind.UNUSABLE_VALUE, f"its cluster name {peer.cluster!r} {problem}"
        return None

    def selector(self, peer: Peer, subject: Peer | None) -> Selector | None:
        """A peer selector as seen from a CNP in `subject`'s namespace (None: a CCNP), or None
        when no label tells the peer apart: a selector would name every pod of its namespace."""
        if self.unselectable(peer):
            return None
        extra = {}
        if subject is None or peer.namespace != subject.namespace:
            extra[NAMESPACE_KEY] = peer.namespace
        if subject is not None and peer.cluster and subject.cluster and peer.cluster != subject.cluster:
            extra[CLUSTER_KEY] = peer.cluster
        return self.selectors.selector(peer, extra)


@dataclass(frozen=True, slots=True)
class Rules:
    """Entries of an ingress or egress section and the notes about them; `+` keeps both in order."""

    entries: tuple[PeerRule, ...] = ()
    notes: tuple[Note, ...] = ()

    def __add__(self, other: Rules) -> Rules:
        return Rules(self.entries + other.entries, self.notes + other.notes)

    @staticmethod
    def join(parts: Iterable[Rules]) -> Rules:
        entries: list[PeerRule] = []
        notes: list[Note] = []
        for part in parts:
            entries.extend(part.entries)
            notes.extend(part.notes)
        return Rules(tuple(entries), tuple(notes))
