"""Rule entries for one peer, and for the clients outside the cluster.

A peer becomes the one field of a rule entry that names it (ref cilium-policy.md §5):
a workload its selector, namespaced when it crosses namespaces; an entity Cilium lets
a policy name its entity; an outside address its /32 or /128 (or the `world` entity,
as asked). Peers no policy can name (unknown, health, init) become notes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from flowgen.cilium import Entity
from flowgen.graph.edge import Edge
from flowgen.graph.identity import Peer, PeerKind
from flowgen.policy.model import Direction, ICMPField, PeerRule, PortRule, Selector
from flowgen.synth.context import PREPOSITION, Context, Rules
from flowgen.synth.notes import Evidence, Note, NoteKind
from flowgen.synth.options import WorldMode
from flowgen.synth.ports import port_rules

_EXPRESSIBLE_ENTITIES = frozenset(
    {Entity.HOST, Entity.REMOTE_NODE, Entity.KUBE_APISERVER, Entity.INGRESS, Entity.WORLD}
)
_WORLD = Peer(PeerKind.ENTITY, name=Entity.WORLD)


@dataclass(frozen=True, slots=True)
class Target:
    """The peer fields of a rule entry; exactly one is set (Cilium allows one peer kind per entry)."""

    endpoints: tuple[Selector, ...] | None = None
    entities: tuple[str, ...] | None = None
    cidrs: tuple[str, ...] | None = None

    def rule(
        self,
        comment: str,
        *,
        to_ports: tuple[PortRule, ...] | None = None,
        icmps: tuple[tuple[ICMPField, ...], ...] | None = None,
    ) -> PeerRule:
        return PeerRule(
            endpoints=self.endpoints,
            entities=self.entities,
            cidrs=self.cidrs,
            to_ports=to_ports,
            icmps=icmps,
            comment=comment,
        )


def find_target(ctx: Context, subject: Peer, peer: Peer, direction: Direction) -> Target | None:
    """How a rule entry of `subject`'s policy names `peer` (None: no policy can)."""
    if peer.kind is PeerKind.WORKLOAD:
        return Target(endpoints=(ctx.selector(peer, subject),))
    if peer.kind is PeerKind.ENTITY and peer.name in _EXPRESSIBLE_ENTITIES:
        return Target(entities=(str(peer.name),))
    if peer.kind is PeerKind.CIDR:
        if direction is Direction.EGRESS and ctx.options.world is WorldMode.ENTITY:
            return Target(entities=(str(Entity.WORLD),))
        return Target(cidrs=(peer.name,))
    return None


def peer_rules(ctx: Context, subject: Peer, peer: Peer, edges: Sequence[Edge], direction: Direction) -> Rules:
    """The entries for one peer: one with its ports (L7 where seen), one for ICMP."""
    evidence = Evidence.of(edges)
    side = PREPOSITION[direction]
    target = find_target(ctx, subject, peer, direction)
    if target is None:
        return Rules(notes=(_unexpressed(ctx, subject, peer, evidence, direction),))
    notes: list[Note] = []
    if peer.kind is PeerKind.ENTITY and peer.name == Entity.HOST and direction is Direction.INGRESS:
        notes.append(
            Note(
                NoteKind.HOST,
                ctx.label(subject),
                "ingress from the node (kubelet probes) is allowed by Cilium anyway unless "
                "allow-localhost=policy; the fromEntities: [host] rule keeps it working then",
                evidence.flows,
            )
        )
    ports = port_rules(ctx, subject, peer, edges, direction)
    comment = f"{side} {ctx.label(peer)}: {evidence.describe(counts=False)}"
    entries = []
    if ports.rules:
        entries.append(target.rule(comment, to_ports=ports.rules))
    if ports.icmps:
        entries.append(target.rule(comment + " (ICMP)", icmps=(ports.icmps,)))
    return Rules(tuple(entries), (*notes, *ports.notes))


def _unexpressed(ctx: Context, subject: Peer, peer: Peer, evidence: Evidence, direction: Direction) -> Note:
    if peer.kind is PeerKind.UNKNOWN:
        kind, why = NoteKind.UNKNOWN_PEER, "(the peer has no identity labels in the flows)"
    elif peer.name in (Entity.HEALTH, Entity.INIT):
        kind, why = NoteKind.NOT_EXPRESSED, "(cilium-health and init traffic are not policy material)"
    else:
        kind, why = NoteKind.NOT_EXPRESSED, "(this entity cannot be expressed as a peer)"
    return Note(
        kind,
        ctx.label(subject),
        f"{PREPOSITION[direction]} {ctx.label(peer)}: {evidence.describe()} not turned into a rule {why}",
        evidence.flows,
    )


def is_outside(peer: Peer) -> bool:
    """A client outside the cluster: an address, or the world when Hubble had no address."""
    return peer.kind is PeerKind.CIDR or peer == _WORLD


def outside_ingress(ctx: Context, subject: Peer, edges: Sequence[Edge]) -> Rules:
    """Clients outside the cluster: fromCIDR for a few fixed addresses, and the world entity
    for a port reached from `world_clients` addresses or more (an internet-facing service)."""
    by_port: dict[tuple[str, int], list[Edge]] = defaultdict(list)
    for edge in edges:
        by_port[(edge.protocol, edge.port)].append(edge)
    world_ports: list[Edge] = []
    by_cidr: dict[str, list[Edge]] = defaultdict(list)
    notes: list[Note] = []
    for (protocol, port), port_edges in sorted(by_port.items()):
        clients = {e.source.name for e in port_edges if e.source.kind is PeerKind.CIDR}
        if len(clients) >= ctx.options.world_clients or any(e.source.kind is PeerKind.ENTITY for e in port_edges):
            world_ports.extend(port_edges)
            notes.append(
                Note(
                    NoteKind.WORLD_INGRESS,
                    ctx.label(subject),
                    f"{protocol}/{port} is reached from {len(clients)} outside addresses: allowed from the world "
                    f"entity (internet-facing; threshold {ctx.options.world_clients})",
                    sum(e.flows for e in port_edges),
                )
            )
        else:
            for edge in port_edges:
                by_cidr[edge.source.name].append(edge)
    rules = Rules(notes=tuple(notes))
    if world_ports:
        rules += peer_rules(ctx, subject, _WORLD, world_ports, Direction.INGRESS)
    for _cidr, cidr_edges in sorted(by_cidr.items()):
        rules += peer_rules(ctx, subject, cidr_edges[0].source, cidr_edges, Direction.INGRESS)
    return rules
