"""The communication graph -> least-privilege CiliumNetworkPolicies, plus notes for everything else.

One CiliumNetworkPolicy per observed workload (the subject) in the chosen
namespaces, with an ingress section listing who talked to it and an egress
section listing what it talked to, both from allowed (or audit) evidence only
(ref cilium-policy.md §11 is the checklist this follows):

- peers: workloads by their smallest distinguishing label set (§9.3),
  namespaced when they cross namespaces; entities; DNS names as `toFQDNs`;
  other outside addresses as /32 or /128 `toCIDR` (or the `world` entity);
  outside clients as `fromCIDR`, or `fromEntities: [world]` once enough
  distinct addresses were seen on a port (an internet-facing service);
- ports to one peer merged into one rule, ICMP in its own rule; L7 rules where
  Hubble saw L7 for that peer and port, and then no L4-only allow for that
  peer and port (it would make the L7 rule moot, §7.1);
- DNS: a workload that resolved names gets an egress rule to the DNS server
  it used (detected from the flows), on port 53 UDP and TCP, with `rules.dns`
  listing exactly the names it resolved and the names its `toFQDNs` need
  (§5.5); many names under one parent collapse to `*.parent`, never at a
  public suffix.

Anything the evidence did not turn into a rule becomes a `Note`: policy-denied
drops, peers that cannot be selected, folded or collapsed paths and names,
Kafka rules a release cannot express, workloads with little evidence.
Pure: values in, values out; the same edges in any order give the same result.
"""

from __future__ import annotations

import enum
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta

from flowgen.cilium import (
    CLUSTER_KEY,
    DEFAULT_DENY_SWITCH,
    DEFAULT_RELEASE,
    DNS_PORT,
    NAMESPACE_KEY,
    NO_KAFKA_RULES,
    SERVICEACCOUNT_LABEL,
    Entity,
    Release,
)
from flowgen.graph.edge import Edge, settle
from flowgen.graph.evidence import GRANTING, L7Kind, Use
from flowgen.graph.identity import Peer, PeerKind, split_label
from flowgen.ingest.flow import Protocol
from flowgen.policy.model import (
    MANAGED_BY,
    HTTPRule,
    ICMPField,
    Kind,
    L4Protocol,
    L7Rules,
    PeerRule,
    Policy,
    PortProtocol,
    PortRule,
    Rule,
    Selector,
)
from flowgen.synth.baseline import any_name_dns_rule, clusterwide, default_deny
from flowgen.synth.notes import Evidence, Note, NoteKind, Proposal, duration_text
from flowgen.synth.patterns import Selectors, collapse_names, collapse_paths, kafka_rules, path_regex, policy_name


class L7Mode(enum.StrEnum):
    NONE = "none"
    HTTP = "http"
    ALL = "all"


class WorldMode(enum.StrEnum):
    """How egress to an outside address without a DNS name is written."""

    CIDR = "cidr"
    ENTITY = "entity"


@dataclass(frozen=True, slots=True)
class Options:
    version: Release = DEFAULT_RELEASE
    l7: L7Mode = L7Mode.ALL
    world: WorldMode = WorldMode.CIDR
    # Distinct outside client addresses on one port from which ingress becomes `fromEntities: [world]`.
    world_clients: int = 5
    # Names under one parent past which they collapse to `*.parent`.
    dns_collapse: int = 10
    # Distinct path rules per peer, port and method past which paths collapse by first segment.
    path_collapse: int = 20
    # Workloads with fewer flows, or seen for less time, are reported as thinly evidenced.
    min_flows: int = 10
    min_span: timedelta = timedelta(hours=1)
    default_deny: bool = False
    clusterwide: bool = False
    # Shown in every file's header: how to regenerate it.
    command: str = "flowgen generate"


_EXPRESSIBLE_ENTITIES = frozenset(
    {Entity.HOST, Entity.REMOTE_NODE, Entity.KUBE_APISERVER, Entity.INGRESS, Entity.WORLD}
)
_MAX_PORTS = 40
_SYSTEM_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease"})


# ---------------------------------------------------------------------------
# Building rules


@dataclass(slots=True)
class _PortEvidence:
    """What one peer did on one (protocol, port)."""

    l7: list[Edge] = field(default_factory=list)
    l4: list[Edge] = field(default_factory=list)


class _Synth:
    def __init__(self, edges: Sequence[Edge], options: Options) -> None:
        self.options = options
        self.notes: set[Note] = set()
        # Evidence a policy drop contradicts (sent, then dropped at the destination) allows nothing.
        self.edges = [e for e in settle(edges)[0] if e.use in GRANTING]
        self.by_source: dict[Peer, list[Edge]] = defaultdict(list)
        self.by_destination: dict[Peer, list[Edge]] = defaultdict(list)
        for edge in self.edges:
            self.by_source[edge.source].append(edge)
            self.by_destination[edge.destination].append(edge)
        workloads = [p for e in edges for p in (e.source, e.destination) if p.kind is PeerKind.WORKLOAD]
        self.selectors = Selectors.build(workloads)
        self.dns_servers = self._dns_servers()
        self.names: dict[Peer, str] = {}
        for e in edges:
            for peer, name in ((e.source, e.source_workload), (e.destination, e.destination_workload)):
                if name:
                    self.names[peer] = max(self.names.get(peer, ""), name)

    def note(self, kind: NoteKind, subject: str, message: str, flows: int = 0) -> None:
        self.notes.add(Note(kind, subject, message, flows))

    def label(self, peer: Peer) -> str:
        if peer.kind is PeerKind.WORKLOAD:
            return f"{peer.namespace}/{self.names.get(peer) or ','.join(peer.labels)}"
        return peer.name or str(peer.kind)

    def _dns_servers(self) -> set[Peer]:
        """Workloads that answered DNS: destinations of DNS requests (L7), else of UDP port 53."""
        servers = {e.destination for e in self.edges if e.l7.kind is L7Kind.DNS}
        servers |= {
            e.destination
            for e in self.edges
            if e.protocol is Protocol.UDP and e.port == DNS_PORT and e.destination.kind is PeerKind.WORKLOAD
        }
        return servers

    def selector(self, peer: Peer, subject: Peer | None) -> Selector:
        """A peer selector as seen from a CNP in `subject`'s namespace (None: a CCNP)."""
        labels = dict(self.selectors.by_peer.get(peer, {}))
        if subject is None or peer.namespace != subject.namespace:
            labels[NAMESPACE_KEY] = peer.namespace
        if subject is not None and peer.cluster and subject.cluster and peer.cluster != subject.cluster:
            labels[CLUSTER_KEY] = peer.cluster
        return Selector.of(labels)

    # -- per workload --------------------------------------------------------

    def workload_policy(self, subject: Peer) -> Policy | None:
        name = self.label(subject)
        if not subject.usable:
            self.note(
                NoteKind.NO_LABELS,
                name,
                "no label tells this workload apart (only the default service account); no policy generated. "
                "Give its pods an app label",
            )
            return None
        if subject in self.selectors.ambiguous:
            self.note(
                NoteKind.AMBIGUOUS,
                name,
                "its labels also match another observed workload of the namespace; the policy selects both",
            )
        total = Evidence()
        egress_edges = self.by_source.get(subject, [])
        ingress_edges = self.by_destination.get(subject, [])
        # An edge inside one workload (pod to pod of a StatefulSet) is both; count it once.
        for edge in {id(e): e for e in egress_edges + ingress_edges}.values():
            total.add(edge)
        egress = self._egress(subject, egress_edges)
        ingress = self._ingress(subject, ingress_edges)
        if not egress and not ingress:
            return None
        for direction, rules in (("ingress", ingress), ("egress", egress)):
            if not rules and not self.options.default_deny:
                self.note(
                    NoteKind.OPEN,
                    name,
                    f"no {direction} was observed, so the policy has no {direction} section and leaves "
                    f"{direction} unrestricted (add --default-deny to deny it)",
                )
        thin = []
        if total.flows < self.options.min_flows:
            thin.append(f"fewer than {self.options.min_flows} flows")
        if total.span < self.options.min_span:
            thin.append(f"seen for less than {duration_text(self.options.min_span)}")
        if thin:
            self.note(
                NoteKind.LITTLE_EVIDENCE,
                name,
                f"{' and '.join(thin)} ({total.describe()}): observe longer before trusting this policy",
                total.flows,
            )
        rule = Rule(
            endpoint_selector=Selector.of(self.selectors.by_peer[subject]),
            ingress=tuple(ingress) or None,
            egress=tuple(egress) or None,
        )
        return Policy(
            Kind.CNP,
            policy_name(self.names.get(subject, "") or _fallback_name(subject)),
            subject.namespace,
            (rule,),
            labels=(MANAGED_BY,),
            header=self._header(f"workload {name}", total),
        )

    def _header(self, what: str, evidence: Evidence) -> tuple[str, ...]:
        return (
            f"Generated by flowgen for {what} from evidence {evidence.describe(counts=False)}.",
            f"Regenerate: {self.options.command}",
        )

    def _by_peer(self, edges: Iterable[Edge], side: str) -> dict[Peer, list[Edge]]:
        grouped: dict[Peer, list[Edge]] = defaultdict(list)
        for edge in edges:
            grouped[getattr(edge, side)].append(edge)
        return dict(sorted(grouped.items()))

    def _egress(self, subject: Peer, edges: list[Edge]) -> list[PeerRule]:
        rules: list[PeerRule] = []
        fqdns: dict[str, list[Edge]] = defaultdict(list)
        resolved: set[str] = set()
        dns_edges: dict[Peer, list[Edge]] = defaultdict(list)
        for peer, peer_edges in self._by_peer(edges, "destination").items():
            if peer in self.dns_servers and any(e.is_dns for e in peer_edges):
                dns_edges[peer].extend(e for e in peer_edges if e.is_dns)
                resolved.update(e.l7.path for e in peer_edges if e.l7.kind is L7Kind.DNS)
                other = [e for e in peer_edges if not e.is_dns]
                if other:
                    rules.extend(self._peer_rule(subject, peer, other, egress=True))
                continue
            if peer.kind is PeerKind.FQDN:
                fqdns[peer.name].extend(peer_edges)
                continue
            rule = self._peer_rule(subject, peer, peer_edges, egress=True)
            rules.extend(rule)
        if fqdns and not dns_edges and not self.dns_servers:
            # A toFQDNs rule without a DNS rule learns no addresses: it would allow nothing.
            self.note(
                NoteKind.NO_DNS_SERVER,
                self.label(subject),
                f"traffic to {', '.join(sorted(fqdns))} is NOT allowed: toFQDNs rules need a DNS rule towards "
                "the cluster DNS, and no DNS server was seen in the flows; observe DNS traffic too, or allow "
                "it by hand",
                sum(e.flows for edges in fqdns.values() for e in edges),
            )
            fqdns = {}
        rules.extend(self._fqdn_rules(subject, fqdns))
        rules = self._dns_rules(subject, dns_edges, resolved, set(fqdns)) + rules
        return rules

    def _ingress(self, subject: Peer, edges: list[Edge]) -> list[PeerRule]:
        rules: list[PeerRule] = []
        outside: list[Edge] = []
        if subject in self.dns_servers:
            rules.extend(self._dns_server_ingress(subject, [e for e in edges if e.is_dns]))
            edges = [e for e in edges if not e.is_dns]
        for peer, peer_edges in self._by_peer(edges, "source").items():
            if peer.kind is PeerKind.CIDR or peer == Peer(PeerKind.ENTITY, name=Entity.WORLD):
                outside.extend(peer_edges)
                continue
            rules.extend(self._peer_rule(subject, peer, peer_edges, egress=False))
        rules.extend(self._outside_ingress(subject, outside))
        return rules

    def _dns_server_ingress(self, subject: Peer, edges: list[Edge]) -> list[PeerRule]:
        """The cluster DNS answers every pod, not only the clients a window happened to show:
        its DNS ports are open to the cluster (a deliberate generalization, noted)."""
        if not edges:
            return []
        evidence = Evidence()
        for edge in edges:
            evidence.add(edge)
        clients = sorted({self.label(e.source) for e in edges})
        shown = ", ".join(clients[:5]) + (" ..." if len(clients) > 5 else "")
        self.note(
            NoteKind.DNS_SERVER,
            self.label(subject),
            "answers DNS for the whole cluster: ingress on its DNS ports is allowed from the cluster entity, "
            f"not only from the {len(clients)} clients seen ({shown})",
            evidence.flows,
        )
        ports = tuple(
            PortProtocol(str(port), protocol)
            for port in sorted({e.port for e in edges})
            for protocol in (L4Protocol.UDP, L4Protocol.TCP)
        )
        return [
            PeerRule(
                entities=(str(Entity.CLUSTER),),
                to_ports=(PortRule(ports),),
                comment=f"DNS from every pod of the cluster (generalized): {evidence.describe(counts=False)}",
            )
        ]

    def _peer_rule(self, subject: Peer, peer: Peer, edges: list[Edge], *, egress: bool) -> list[PeerRule]:
        """The rules for one peer: one entry with its ports (L7 where seen), one for ICMP."""
        target: dict[str, object]
        evidence = Evidence()
        for edge in edges:
            evidence.add(edge)
        direction = "to" if egress else "from"
        if peer.kind is PeerKind.WORKLOAD:
            target = {"endpoints": (self.selector(peer, subject),)}
        elif peer.kind is PeerKind.ENTITY and peer.name in _EXPRESSIBLE_ENTITIES:
            target = {"entities": (str(peer.name),)}
            if peer.name == Entity.HOST and not egress:
                self.note(
                    NoteKind.HOST,
                    self.label(subject),
                    "ingress from the node (kubelet probes) is allowed by Cilium anyway unless "
                    "allow-localhost=policy; the fromEntities: [host] rule keeps it working then",
                    evidence.flows,
                )
        elif peer.kind is PeerKind.CIDR:
            if egress and self.options.world is WorldMode.ENTITY:
                target = {"entities": (str(Entity.WORLD),)}
            else:
                target = {"cidrs": (peer.name,)}
        else:
            self.note(
                NoteKind.UNKNOWN_PEER if peer.kind is PeerKind.UNKNOWN else NoteKind.NOT_EXPRESSED,
                self.label(subject),
                f"{direction} {self.label(peer)}: {evidence.describe()} not turned into a rule "
                + (
                    "(the peer has no identity labels in the flows)"
                    if peer.kind is PeerKind.UNKNOWN
                    else "(cilium-health and init traffic are not policy material)"
                    if peer.name in (Entity.HEALTH, Entity.INIT)
                    else "(this entity cannot be expressed as a peer)"
                ),
                evidence.flows,
            )
            return []
        ports, icmps = self._ports(subject, peer, edges, egress=egress)
        comment = f"{direction} {self.label(peer)}: {evidence.describe(counts=False)}"
        rules = []
        if ports:
            rules.append(PeerRule(**target, to_ports=ports, comment=comment))  # type: ignore[arg-type]
        if icmps:
            rules.append(PeerRule(**target, icmps=(icmps,), comment=comment + " (ICMP)"))  # type: ignore[arg-type]
        return rules

    def _ports(
        self, subject: Peer, peer: Peer, edges: list[Edge], *, egress: bool
    ) -> tuple[tuple[PortRule, ...], tuple[ICMPField, ...]]:
        by_port: dict[tuple[str, int], _PortEvidence] = defaultdict(_PortEvidence)
        icmps: set[ICMPField] = set()
        for edge in edges:
            if edge.protocol in (Protocol.ICMPv4, Protocol.ICMPv6):
                icmps.add(ICMPField(edge.port, "IPv4" if edge.protocol is Protocol.ICMPv4 else "IPv6"))
                continue
            slot = by_port[(edge.protocol, edge.port)]
            (slot.l7 if edge.l7.kind is not L7Kind.NONE else slot.l4).append(edge)
        plain: list[PortProtocol] = []
        with_l7: list[PortRule] = []
        for (protocol, port), slot in sorted(by_port.items()):
            l7 = self._l7_rules(subject, peer, port, slot.l7, egress=egress)
            if l7 is not None:
                with_l7.append(PortRule((PortProtocol(str(port), L4Protocol.TCP),), l7))
            elif protocol in L4Protocol.__members__:
                plain.append(PortProtocol(str(port), L4Protocol(protocol)))
        chunks = [tuple(plain[i : i + _MAX_PORTS]) for i in range(0, len(plain), _MAX_PORTS)]
        return tuple(PortRule(chunk) for chunk in chunks) + tuple(with_l7), tuple(sorted(icmps))

    def _l7_rules(self, subject: Peer, peer: Peer, port: int, edges: list[Edge], *, egress: bool) -> L7Rules | None:
        mode = self.options.l7
        http = [e for e in edges if e.l7.kind in (L7Kind.HTTP, L7Kind.GRPC)]
        kafka = [e for e in edges if e.l7.kind is L7Kind.KAFKA]
        where = f"{'to' if egress else 'from'} {self.label(peer)} port {port}"
        if http and mode is not L7Mode.NONE:
            return L7Rules(http=self._http(subject, where, http))
        if kafka and mode is L7Mode.ALL:
            if self.options.version >= NO_KAFKA_RULES:
                self.note(
                    NoteKind.KAFKA,
                    self.label(subject),
                    f"{where}: Kafka rules were removed in Cilium 1.20; allowed at L4 only "
                    f"(topics seen: {', '.join(sorted({e.l7.path for e in kafka} - {''})) or 'none'})",
                    sum(e.flows for e in kafka),
                )
                return None
            return L7Rules(kafka=kafka_rules(kafka))
        return None

    def _http(self, subject: Peer, where: str, edges: list[Edge]) -> tuple[HTTPRule, ...]:
        by_method: dict[str, dict[str, bool]] = defaultdict(dict)
        for edge in edges:
            # gRPC paths name a service and a method: literal, never generalized.
            grpc = edge.l7.kind is L7Kind.GRPC
            regex = re.escape(edge.l7.path) if grpc else path_regex(edge.l7.path, folded=edge.folded, query=False)
            paths = by_method[edge.l7.method]
            paths[regex] = paths.get(regex, False) or edge.l7.query
            if edge.folded:
                self.note(
                    NoteKind.FOLDED_PATHS,
                    self.label(subject),
                    f"{where}: {edge.l7.method} paths beyond the observe bound were folded into {edge.l7.path}",
                    edge.flows,
                )
        rules: list[HTTPRule] = []
        for method, paths in sorted(by_method.items()):
            kept, collapsed = collapse_paths(paths, self.options.path_collapse)
            for prefix, count in sorted(collapsed.items()):
                self.note(
                    NoteKind.COLLAPSED_PATHS,
                    self.label(subject),
                    f"{where}: {count} distinct {method} paths collapsed into {prefix}",
                    count,
                )
            rules.extend(
                HTTPRule(method=re.escape(method), path=regex + (r"(\?.*)?" if query else ""))
                for regex, query in kept.items()
            )
        return tuple(sorted(rules))

    def _fqdn_rules(self, subject: Peer, fqdns: dict[str, list[Edge]]) -> list[PeerRule]:
        """toFQDNs entries, one per distinct port set, names collapsed the same way as the DNS rule."""
        by_ports: dict[tuple[PortRule, ...], list[str]] = defaultdict(list)
        evidence: dict[tuple[PortRule, ...], Evidence] = defaultdict(Evidence)
        for name, edges in sorted(fqdns.items()):
            ports, _icmps = self._ports(subject, Peer(PeerKind.FQDN, name=name), edges, egress=True)
            by_ports[ports].append(name)
            for edge in edges:
                evidence[ports].add(edge)
        rules = []
        for ports, names in sorted(by_ports.items(), key=lambda item: item[1]):
            selectors, _collapsed = collapse_names(names, self.options.dns_collapse)
            rules.append(
                PeerRule(
                    fqdns=tuple(selectors),
                    to_ports=ports,
                    comment=f"to {', '.join(names[:5])}{' ...' if len(names) > 5 else ''}: "
                    f"{evidence[ports].describe(counts=False)}",
                )
            )
        return rules

    def _dns_rules(
        self, subject: Peer, dns_edges: dict[Peer, list[Edge]], resolved: set[str], fqdns: set[str]
    ) -> list[PeerRule]:
        names = resolved | fqdns
        servers = dict(dns_edges)
        if fqdns and not servers:
            # It connected to names without a lookup in the window (cached answers): use every DNS server seen.
            servers = {server: [] for server in sorted(self.dns_servers)}
        selectors, collapsed = collapse_names(names, self.options.dns_collapse)
        for pattern, count in sorted(collapsed.items()):
            self.note(NoteKind.COLLAPSED_NAMES, self.label(subject), f"{count} names collapsed into {pattern}", count)
        rules = []
        for server, edges in sorted(servers.items()):
            evidence = Evidence()
            for edge in edges:
                evidence.add(edge)
            observed = {e.port for e in edges if e.port} or {DNS_PORT}
            ports = tuple(
                PortProtocol(str(port), protocol)
                for port in sorted(observed)
                for protocol in (L4Protocol.UDP, L4Protocol.TCP)
            )
            if not names:
                self.note(
                    NoteKind.DNS_NAMES_UNKNOWN,
                    self.label(subject),
                    f"DNS to {self.label(server)} was seen only at L3/L4, so the names are unknown; "
                    "allowed without a DNS rule (enable DNS visibility to restrict names)",
                    evidence.flows,
                )
                rule = PortRule(ports)
            else:
                rule = PortRule(ports, L7Rules(dns=tuple(selectors)))
            rules.append(
                PeerRule(
                    endpoints=(self.selector(server, subject),),
                    to_ports=(rule,),
                    comment=f"DNS to {self.label(server)}: {evidence.describe(counts=False)}",
                )
            )
        return rules

    def _outside_ingress(self, subject: Peer, edges: list[Edge]) -> list[PeerRule]:
        """Clients outside the cluster: fromCIDR for a few fixed addresses, world for many."""
        by_port: dict[tuple[str, int], list[Edge]] = defaultdict(list)
        for edge in edges:
            by_port[(edge.protocol, edge.port)].append(edge)
        world_ports: list[Edge] = []
        by_cidr: dict[str, list[Edge]] = defaultdict(list)
        for (protocol, port), port_edges in sorted(by_port.items()):
            clients = {e.source.name for e in port_edges if e.source.kind is PeerKind.CIDR}
            if len(clients) >= self.options.world_clients or any(e.source.kind is PeerKind.ENTITY for e in port_edges):
                world_ports.extend(port_edges)
                self.note(
                    NoteKind.WORLD_INGRESS,
                    self.label(subject),
                    f"{protocol}/{port} is reached from {len(clients)} outside addresses: allowed from the world "
                    f"entity (internet-facing; threshold {self.options.world_clients})",
                    sum(e.flows for e in port_edges),
                )
            else:
                for edge in port_edges:
                    by_cidr[edge.source.name].append(edge)
        rules = []
        if world_ports:
            rules.extend(self._peer_rule(subject, Peer(PeerKind.ENTITY, name=Entity.WORLD), world_ports, egress=False))
        for _cidr, cidr_edges in sorted(by_cidr.items()):
            rules.extend(self._peer_rule(subject, cidr_edges[0].source, cidr_edges, egress=False))
        return rules


def _fallback_name(peer: Peer) -> str:
    for label in peer.labels:
        _source, key, value = split_label(label)
        if key != SERVICEACCOUNT_LABEL:
            return value
    return "workload"


def _dedupe_names(policies: list[Policy]) -> list[Policy]:
    """Two workloads with the same display name in a namespace get numbered names."""
    seen: dict[tuple[str, str], int] = defaultdict(int)
    result = []
    for policy in policies:
        seen[(policy.namespace, policy.name)] += 1
        count = seen[(policy.namespace, policy.name)]
        result.append(replace(policy, name=f"{policy.name}-{count}") if count > 1 else policy)
    return result


def synthesize(edges: Sequence[Edge], namespaces: Iterable[str], options: Options | None = None) -> Proposal:
    """Policies for the workloads of `namespaces` (every namespace seen when empty) from the edges."""
    options = options or Options()
    synth = _Synth(edges, options)
    wanted = set(namespaces)
    subjects = sorted(
        {
            peer
            for e in synth.edges
            for peer in (e.source, e.destination)
            if peer.kind is PeerKind.WORKLOAD and (not wanted or peer.namespace in wanted)
        }
    )
    if not wanted:
        # Cilium, CoreDNS and friends talk to things a short observation rarely shows (upstream
        # DNS, the nodes, the API server): their policies only when the namespace is asked for.
        system = sorted({s.namespace for s in subjects} & _SYSTEM_NAMESPACES)
        if system:
            synth.note(
                NoteKind.SYSTEM,
                ", ".join(system),
                "no policies generated for system namespaces with -A; name them with -n to include them",
            )
            subjects = [s for s in subjects if s.namespace not in _SYSTEM_NAMESPACES]
    policies = [p for p in (synth.workload_policy(s) for s in subjects) if p is not None]
    scope = wanted or {s.namespace for s in subjects}
    if options.default_deny:
        policies.extend(_default_deny(synth, sorted(scope)))
    if options.clusterwide:
        policies.extend(_clusterwide(synth))
    for edge in edges:
        for peer, name in ((edge.source, edge.source_workload), (edge.destination, edge.destination_workload)):
            if peer.kind is PeerKind.ENTITY and peer.name == Entity.HOST and name:
                synth.note(
                    NoteKind.HOST_NETWORK,
                    name,
                    "a host-network pod: its traffic carries the node's identity, so no pod policy can select it "
                    "(it needs a host policy); its peers' rules name the host entity",
                )
        if edge.use is Use.DENIED and (not wanted or wanted & {edge.source.namespace, edge.destination.namespace}):
            synth.note(
                NoteKind.DENIED,
                synth.label(edge.destination),
                f"{edge.drop_reason} from {synth.label(edge.source)} on {edge.protocol}/{edge.port}: "
                f"{edge.flows} flows dropped by policy; not allowed (review: wanted traffic or an attack?)",
                edge.flows,
            )
        elif edge.use is Use.AUDIT:
            synth.note(
                NoteKind.AUDIT,
                synth.label(edge.destination),
                f"from {synth.label(edge.source)} on {edge.protocol}/{edge.port}: seen in audit mode "
                "(would have been dropped); allowed as evidence",
                edge.flows,
            )
    ordered = sorted(_dedupe_names(policies), key=lambda p: (p.kind is Kind.CNP, p.namespace, p.name))
    return Proposal(tuple(ordered), tuple(sorted(synth.notes)))


def _dns_servers_rule(synth: _Synth, subject: Peer | None) -> PeerRule | None:
    if not synth.dns_servers:
        return None
    return any_name_dns_rule([synth.selector(server, subject) for server in sorted(synth.dns_servers)])


def _default_deny(synth: _Synth, namespaces: list[str]) -> list[Policy]:
    policies = []
    for namespace in namespaces:
        dns = _dns_servers_rule(synth, Peer(PeerKind.WORKLOAD, namespace=namespace))
        if dns is None:
            synth.note(
                NoteKind.NO_DNS_SERVER,
                namespace,
                "no cluster DNS was seen in the flows, so the default-deny policy denies ingress only: "
                "an egress default deny would break name resolution",
            )
        elif not synth.options.clusterwide:
            synth.note(
                NoteKind.WIDE_DNS,
                namespace,
                "the default-deny policy lets every pod of the namespace resolve any name (Cilium's DNS proxy "
                "needs a DNS rule for every pod); connections to those names still need their own rules",
            )
        policies.append(
            default_deny(namespace, dns, dns_elsewhere=synth.options.clusterwide, command=synth.options.command)
        )
    return policies


def _clusterwide(synth: _Synth) -> list[Policy]:
    if synth.options.version < DEFAULT_DENY_SWITCH:
        raise ValueError("cluster-wide baselines need enableDefaultDeny, which Cilium has from 1.16 on")
    dns = _dns_servers_rule(synth, None)
    if dns is None:
        synth.note(NoteKind.NO_DNS_SERVER, "cluster", "no cluster DNS was seen: no DNS baseline generated")
    return clusterwide(dns, command=synth.options.command)
