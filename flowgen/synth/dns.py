"""Everything DNS: which peers are DNS servers, and the rules and notes about names.

- servers: the destinations of DNS requests Hubble saw at L7, and workloads reached
  on UDP port 53;
- a workload that resolved names gets an egress rule to each DNS server it used, on
  its DNS ports over UDP and TCP, with `rules.dns` listing exactly the names it
  resolved plus the names its `toFQDNs` need (ref cilium-policy.md §5.5): Cilium's
  DNS proxy learns a name's addresses only from lookups a DNS rule lets through;
- `toFQDNs` entries, one per distinct port set; many names under one parent collapse
  to `*.parent` in both, never at a public suffix (see patterns.collapse_names);
- a DNS server's own ingress is open to the whole cluster on its DNS ports;
- the baselines' rule: every DNS server, any name.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from flowgen.cilium import DNS_PORT, Entity
from flowgen.graph.edge import Edge
from flowgen.graph.evidence import L7Kind
from flowgen.graph.identity import Peer, PeerKind
from flowgen.ingest.flow import Protocol
from flowgen.policy.formats import dns_name_problem
from flowgen.policy.model import (
    Direction,
    FQDNSelector,
    L4Protocol,
    L7Rules,
    PeerRule,
    PortProtocol,
    PortRule,
    Selector,
)
from flowgen.synth.context import Context, Rules
from flowgen.synth.notes import Evidence, Note, NoteKind
from flowgen.synth.patterns import collapse_names
from flowgen.synth.ports import port_rules


def find_servers(edges: Sequence[Edge]) -> frozenset[Peer]:
    """Peers that answered DNS: destinations of DNS requests (L7), else workloads on UDP port 53."""
    servers = {e.destination for e in edges if e.l7.kind is L7Kind.DNS}
    servers |= {
        e.destination
        for e in edges
        if e.protocol is Protocol.UDP and e.port == DNS_PORT and e.destination.kind is PeerKind.WORKLOAD
    }
    return frozenset(servers)


@dataclass(frozen=True, slots=True)
class Lookups:
    """A workload's egress as far as names go."""

    # Its DNS traffic, per DNS server it used.
    by_server: Mapping[Peer, tuple[Edge, ...]]
    # The names it looked up (known when Hubble saw DNS at L7).
    resolved: frozenset[str]
    # Its connections to outside peers known by a DNS name, per name.
    fqdns: Mapping[str, tuple[Edge, ...]]


def split_lookups(ctx: Context, by_peer: Mapping[Peer, Sequence[Edge]]) -> tuple[Lookups, dict[Peer, list[Edge]]]:
    """What the name rules handle, and the edges left for ordinary peer rules (in `by_peer`'s
    order). A DNS server the workload also reaches on other ports keeps those in the rest."""
    by_server: dict[Peer, tuple[Edge, ...]] = {}
    resolved: set[str] = set()
    fqdns: dict[str, list[Edge]] = defaultdict(list)
    rest: dict[Peer, list[Edge]] = {}
    for peer, edges in by_peer.items():
        if peer in ctx.dns_servers and any(e.is_dns for e in edges):
            by_server[peer] = tuple(e for e in edges if e.is_dns)
            resolved.update(e.l7.path for e in edges if e.l7.kind is L7Kind.DNS)
            other = [e for e in edges if not e.is_dns]
            if other:
                rest[peer] = other
        elif peer.kind is PeerKind.FQDN:
            fqdns[peer.name].extend(edges)
        else:
            rest[peer] = list(edges)
    named = {name: tuple(edges) for name, edges in fqdns.items()}
    return Lookups(by_server, frozenset(resolved), named), rest


def egress_rules(ctx: Context, subject: Peer, lookups: Lookups) -> tuple[Rules, Rules]:
    """The DNS entries (first in an egress section) and the toFQDNs entries (last)."""
    fqdns = lookups.fqdns
    notes: tuple[Note, ...] = ()
    if fqdns and not ctx.dns_servers:
        # A toFQDNs rule without a DNS rule learns no addresses: it would allow nothing.
        notes = (
            Note(
                NoteKind.NO_DNS_SERVER,
                ctx.label(subject),
                f"traffic to {', '.join(sorted(fqdns))} is NOT allowed: toFQDNs rules need a DNS rule towards "
                "the cluster DNS, and no DNS server was seen in the flows; observe DNS traffic too, or allow "
                "it by hand",
                sum(e.flows for edges in fqdns.values() for e in edges),
            ),
        )
        fqdns = {}
    unusable = {name: problem for name in lookups.resolved | set(fqdns) if (problem := dns_name_problem(name))}
    notes += tuple(
        Note(NoteKind.UNUSABLE_VALUE, ctx.label(subject), f"DNS name {name!r} {problem}; left out of its rules")
        for name, problem in sorted(unusable.items())
    )
    resolved = lookups.resolved - set(unusable)
    fqdns = {name: edges for name, edges in fqdns.items() if name not in unusable}
    # Names seen but none usable: no DNS rule at all, rather than one that allows every name.
    known = bool(lookups.resolved)
    lookup = _lookup_rules(ctx, subject, lookups.by_server, resolved | set(fqdns), bool(fqdns), known=known)
    return Rules(notes=notes) + lookup, _fqdn_rules(ctx, subject, fqdns)


def _lookup_rules(
    ctx: Context,
    subject: Peer,
    by_server: Mapping[Peer, Sequence[Edge]],
    names: frozenset[str],
    cached: bool,
    *,
    known: bool,
) -> Rules:
    """One entry per DNS server. `cached`: the workload connected to names it did not look up
    in the window (cached answers), so with no lookup seen every DNS server seen is used.
    `known`: Hubble saw the names looked up (L7), so no `names` means none could be listed."""
    servers = dict(by_server)
    if cached and not servers:
        servers = {server: () for server in sorted(ctx.dns_servers)}
    selectors, collapsed = collapse_names(names, ctx.options.dns_collapse)
    notes = [
        Note(NoteKind.COLLAPSED_NAMES, ctx.label(subject), f"{count} names collapsed into {pattern}", count)
        for pattern, count in sorted(collapsed.items())
    ]
    entries = []
    for server, edges in sorted(servers.items()):
        evidence = Evidence.of(edges)
        selector = ctx.selector(server, subject)
        unselectable = ctx.unselectable(server)
        if selector is None:
            kind, why = unselectable or (NoteKind.NO_LABELS, "no selector")
            notes.append(
                Note(
                    kind,
                    ctx.label(subject),
                    f"DNS to {ctx.label(server)}: {evidence.describe()} not turned into a rule (the DNS server: {why})",
                    evidence.flows,
                )
            )
            continue
        ports = _udp_and_tcp({e.port for e in edges if e.port} or {DNS_PORT})
        if not names and known:
            continue
        if not names:
            notes.append(
                Note(
                    NoteKind.DNS_NAMES_UNKNOWN,
                    ctx.label(subject),
                    f"DNS to {ctx.label(server)} was seen only at L3/L4, so the names are unknown; "
                    "allowed without a DNS rule (enable DNS visibility to restrict names)",
                    evidence.flows,
                )
            )
            rule = PortRule(ports)
        else:
            rule = PortRule(ports, L7Rules(dns=tuple(selectors)))
        entries.append(
            PeerRule(
                endpoints=(selector,),
                to_ports=(rule,),
                comment=f"DNS to {ctx.label(server)}: {evidence.describe(counts=False)}",
            )
        )
    return Rules(tuple(entries), tuple(notes))


def _fqdn_rules(ctx: Context, subject: Peer, fqdns: Mapping[str, Sequence[Edge]]) -> Rules:
    """toFQDNs entries, one per distinct port set, names collapsed the same way as the DNS rule."""
    names: dict[tuple[PortRule, ...], list[str]] = defaultdict(list)
    used: dict[tuple[PortRule, ...], list[Edge]] = defaultdict(list)
    notes: list[Note] = []
    for name, edges in sorted(fqdns.items()):
        ports = port_rules(ctx, subject, Peer(PeerKind.FQDN, name=name), edges, Direction.EGRESS)
        names[ports.rules].append(name)
        used[ports.rules].extend(edges)
        notes.extend(ports.notes)
    entries = []
    for ports_used, same in sorted(names.items(), key=lambda item: item[1]):
        # The DNS rule's collapse notes already tell about these names.
        selectors, _collapsed = collapse_names(same, ctx.options.dns_collapse)
        entries.append(
            PeerRule(
                fqdns=tuple(selectors),
                to_ports=ports_used,
                comment=f"to {', '.join(same[:5])}{' ...' if len(same) > 5 else ''}: "
                f"{Evidence.of(used[ports_used]).describe(counts=False)}",
            )
        )
    return Rules(tuple(entries), tuple(notes))


def server_ingress(ctx: Context, subject: Peer, edges: Sequence[Edge]) -> tuple[Rules, list[Edge]]:
    """A DNS server's lookups as one entry, and the edges left for ordinary peer rules.
    The cluster DNS answers every pod, not only the clients a window happened to show:
    its DNS ports are open to the cluster (a deliberate generalization, noted)."""
    if subject not in ctx.dns_servers:
        return Rules(), list(edges)
    lookups = [e for e in edges if e.is_dns]
    rest = [e for e in edges if not e.is_dns]
    if not lookups:
        return Rules(), rest
    evidence = Evidence.of(lookups)
    clients = sorted({ctx.label(e.source) for e in lookups})
    shown = ", ".join(clients[:5]) + (" ..." if len(clients) > 5 else "")
    note = Note(
        NoteKind.DNS_SERVER,
        ctx.label(subject),
        "answers DNS for the whole cluster: ingress on its DNS ports is allowed from the cluster entity, "
        f"not only from the {len(clients)} clients seen ({shown})",
        evidence.flows,
    )
    entry = PeerRule(
        entities=(str(Entity.CLUSTER),),
        to_ports=(PortRule(_udp_and_tcp({e.port for e in lookups})),),
        comment=f"DNS from every pod of the cluster (generalized): {evidence.describe(counts=False)}",
    )
    return Rules((entry,), (note,)), rest


def baseline_rule(ctx: Context, subject: Peer | None) -> PeerRule | None:
    """Egress to every DNS server seen, as seen from `subject` (None: a CCNP); None when no server was seen."""
    selectors = [ctx.selector(server, subject) for server in sorted(ctx.dns_servers)]
    named = [selector for selector in selectors if selector is not None]
    return any_name_rule(named) if named else None


def any_name_rule(servers: Sequence[Selector]) -> PeerRule:
    """Egress to the DNS servers on port 53 UDP and TCP, any name looked up."""
    return PeerRule(
        endpoints=tuple(sorted(servers)),
        to_ports=(PortRule(_udp_and_tcp({DNS_PORT}), L7Rules(dns=(FQDNSelector(match_pattern="*"),))),),
        comment="DNS to the cluster DNS, any name (lookups only; connections still need their own rules)",
    )


def _udp_and_tcp(ports: Iterable[int]) -> tuple[PortProtocol, ...]:
    """DNS answers over UDP, and over TCP when the answer is too large for UDP (RFC 7766)."""
    return tuple(
        PortProtocol(str(port), protocol) for port in sorted(ports) for protocol in (L4Protocol.UDP, L4Protocol.TCP)
    )
