"""Rule entries for one peer, and for the clients outside the cluster.

A peer becomes the one field of a rule entry that names it (ref cilium-policy.md §5):
a workload its selector, namespaced when it crosses namespaces; an entity Cilium lets
a policy name its entity; an outside address its /32 or /128 (or the `world` entity,
as asked). Peers no policy can name (unknown, health, init, a pod seen only with the
world identity) become notes.
"""

from __future__ import annotations

import ipaddress
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
        selector = ctx.selector(peer, subject)
        return None if selector is None else Target(endpoints=(selector,))
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
    elif peer.kind in (PeerKind.WORKLOAD, PeerKind.POD) and (unselectable := ctx.unselectable(peer)):
        kind, why = unselectable[0], f"({unselectable[1]})"
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
    """Clients outside the cluster, decided per port: an open population (public addresses
    from `world_networks` networks or more, or clients Hubble gave no address for) gets the
    world entity on that port only; a fixed set of addresses (partners, private networks)
    stays fromCIDR. A note per port says which was chosen and why."""
    by_port: dict[tuple[str, int], list[Edge]] = defaultdict(list)
    for edge in edges:
        by_port[(edge.protocol, edge.port)].append(edge)
    world_ports: list[Edge] = []
    by_cidr: dict[str, list[Edge]] = defaultdict(list)
    notes: list[Note] = []
    threshold = ctx.options.world_networks
    for (protocol, port), port_edges in sorted(by_port.items()):
        clients = sorted({e.source.name for e in port_edges if e.source.kind is PeerKind.CIDR})
        networks = public_networks(clients)
        unaddressed = any(e.source.kind is PeerKind.ENTITY for e in port_edges)
        flows = sum(e.flows for e in port_edges)
        seen = (
            f"{protocol}/{port} is reached from {_count(len(clients), 'outside address', 'es')} in "
            f"{_count(len(networks), 'public network', 's')}"
        )
        if unaddressed or len(networks) >= threshold:
            why = "and clients Hubble gave no address for" if unaddressed else f"(at least {threshold})"
            notes.append(
                Note(
                    NoteKind.WORLD_INGRESS,
                    ctx.label(subject),
                    f"{seen} {why}: an open population, so the world entity is allowed on this port only",
                    flows,
                )
            )
            world_ports.extend(port_edges)
            continue
        notes.append(
            Note(
                NoteKind.WORLD_INGRESS,
                ctx.label(subject),
                f"{seen} (fewer than {threshold}): a fixed set of clients, allowed by address; a new client "
                "will be refused (--world-networks sets the threshold)",
                flows,
            )
        )
        for edge in port_edges:
            by_cidr[edge.source.name].append(edge)
    rules = Rules(notes=tuple(notes))
    if world_ports:
        rules += peer_rules(ctx, subject, _WORLD, world_ports, Direction.INGRESS)
    for _cidr, cidr_edges in sorted(by_cidr.items()):
        rules += peer_rules(ctx, subject, cidr_edges[0].source, cidr_edges, Direction.INGRESS)
    return rules


def public_networks(cidrs: Sequence[str]) -> set[str]:
    """The distinct public networks (/24 for IPv4, /48 for IPv6: what one provider or site
    usually holds) of the globally routed addresses among `cidrs`."""
    networks = set()
    for text in cidrs:
        try:
            network = ipaddress.ip_network(text, strict=False)
        except ValueError:
            continue
        if network.network_address.is_global:
            prefix = 24 if network.version == 4 else 48
            networks.add(str(network.supernet(new_prefix=min(prefix, network.prefixlen))))
    return networks


def _count(number: int, noun: str, plural: str) -> str:
    return f"{number} {noun}{'' if number == 1 else plural}"
