"""Near-miss probes: requests next to the observed ones that no evidence supports.

A least-privilege policy set admits what was observed and nothing else. `verify`
checks the first half; probes measure the second. From the observed graph (the
allowed and audit edges, after `settle`, and the samples behind them, which carry
each side's full labels) `derive` makes requests an attacker or a bug would make,
each one small step away from an observed request, in classes (see `MEANINGS`).
A candidate the evidence supports (the same peers, port and L7 attribute were
observed, or a folded path covers it) is never a probe. `replay` asks the engine
which probes the policies would allow: each allowed probe is a hole a reviewer
can see.

Counts stay bounded: candidates are deduplicated, HTTP paths that differ only in
ids are probed once, and each class takes a few candidates per observed edge.
Requests from the node (`host`) are not probed: Cilium lets the node reach its
pods whatever the policy (allow-localhost).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from flowgen.check.engine import Engine, Party, Request
from flowgen.check.nearby import (
    ADMIN_PORTS,
    EXFIL_NAME,
    HOST,
    ICMP,
    KUBE_APISERVER,
    OPPOSITE_ROLE,
    PER_EDGE,
    PROBE_ADDRESS,
    PROBE_APP,
    PROBE_METHODS,
    PROBE_NAMESPACE,
    PROBE_TOPIC,
    PROBE_WORLD,
    REMOTE_NODE,
    SYSTEM_PORTS,
    WORLD,
    Pair,
    Seen,
    elsewhere,
    engine_l7,
    outside,
    sample_party,
    sibling_name,
    sibling_paths,
    unrelated,
)
from flowgen.check.verify import party as graph_party
from flowgen.check.verify import request as edge_request
from flowgen.check.verify import side_label
from flowgen.cilium import SYSTEM_NAMESPACES, Entity
from flowgen.graph.edge import Edge, Sample, settle
from flowgen.graph.evidence import GRANTING, L7, L7Kind
from flowgen.graph.folding import path_template
from flowgen.graph.identity import Peer, PeerKind
from flowgen.ingest.flow import Protocol
from flowgen.policy.model import KAFKA_ROLE_KEYS, Kind, Policy


class ProbeClass(enum.StrEnum):
    OTHER_PORT = "other-port"
    OTHER_METHOD = "other-method"
    SIBLING_PATH = "sibling-path"
    UNLISTED_DNS = "unlisted-dns"
    UNLISTED_FQDN = "unlisted-fqdn"
    UNLISTED_ADDRESS = "unlisted-address"
    OTHER_TOPIC = "other-topic"
    OTHER_ROLE = "other-role"
    OTHER_NAMESPACE_POD = "other-namespace-pod"
    UNRELATED_POD = "unrelated-pod"
    WORLD_TO_INTERNAL = "world-to-internal"
    SYSTEM_TO_WORLD = "system-to-world"


MEANINGS = {
    ProbeClass.OTHER_PORT: "an observed pair of peers on a port never seen between them: the next port, "
    "and the admin ports 22, 2379, 6443, 8443",
    ProbeClass.OTHER_METHOD: "an observed HTTP path with a method never seen on it (DELETE, PUT)",
    ProbeClass.SIBLING_PATH: "a literal path next to an observed one: /admin, /export, /debug, /internal "
    "beside it, /export below it",
    ProbeClass.UNLISTED_DNS: "a DNS lookup of a name the workload never resolved: an exfiltration-style "
    "name and a sibling of a resolved name",
    ProbeClass.UNLISTED_FQDN: "egress to a DNS name the workload never reached, on a port it used towards a name",
    ProbeClass.UNLISTED_ADDRESS: "egress to an outside address the workload never reached, on a port it used "
    "towards an address",
    ProbeClass.OTHER_TOPIC: "a Kafka request for a topic the client never used (another client's, then a made-up one)",
    ProbeClass.OTHER_ROLE: "a Kafka client in the other role on its topic (a producer fetching, a consumer producing)",
    ProbeClass.OTHER_NAMESPACE_POD: "a pod with the client's labels in another namespace, to the observed destination",
    ProbeClass.UNRELATED_POD: "a pod of the client's namespace without its labels, to the observed destination",
    ProbeClass.WORLD_TO_INTERNAL: "an outside address, and another node (remote-node), to a port only seen "
    "from inside the cluster",
    ProbeClass.SYSTEM_TO_WORLD: "a pod of a system namespace to an outside address (TCP/443, TCP/80)",
}


@dataclass(frozen=True, slots=True)
class Probe:
    """One near-miss request: the graph's view (peers, port, L7) and the engine's (request)."""

    kind: ProbeClass
    source: Peer
    destination: Peer
    protocol: Protocol
    port: int
    l7: L7
    request: Request
    source_name: str
    destination_name: str
    # The observed request it is next to, in words.
    near: str

    @property
    def example(self) -> str:
        what = f" {describe(self.l7)}" if self.l7.kind is not L7Kind.NONE else ""
        return f"{self.source_name} -> {self.destination_name} {self.protocol}/{self.port}{what} (near {self.near})"


@dataclass(frozen=True, slots=True)
class Leak:
    """A probe the policies would allow, and the rules that let it through."""

    probe: Probe
    allowed_by: tuple[str, ...]
    # It passed at L4 on an L7 port (no L7 detail was checked).
    l7_unchecked: bool


@dataclass
class ProbeReport:
    # Probes replayed, per class (every class, zero when none was derived).
    probes: dict[ProbeClass, int] = field(default_factory=lambda: dict.fromkeys(ProbeClass, 0))
    allowed: list[Leak] = field(default_factory=list)
    # The namespaces probed, and the system namespaces left out (no policy in the set governs them).
    namespaces: tuple[str, ...] = ()
    not_probed: tuple[str, ...] = ()
    warnings: list[str] = field(default_factory=list)
    # The observed requests replayed beside the probes, and how many of them the policies would drop.
    observed: int = 0
    dropped: int = 0

    @property
    def total(self) -> int:
        return sum(self.probes.values())

    def leaks(self, kind: ProbeClass) -> list[Leak]:
        return [leak for leak in self.allowed if leak.probe.kind is kind]


def describe(l7: L7) -> str:
    if l7.kind is L7Kind.DNS:
        return f"DNS {l7.path}"
    if l7.kind is L7Kind.KAFKA:
        return f"Kafka {l7.method} {l7.path or '(no topic)'}"
    if l7.kind is L7Kind.NONE:
        return ""
    return f"{l7.method} {l7.path}{'?...' if l7.query else ''}"


def probe_scope(
    edges: Iterable[Edge], policies: Sequence[Policy], named: Iterable[str] = ()
) -> tuple[frozenset[str], tuple[str, ...]]:
    """The namespaces to probe: those named, else every namespace in the evidence except the
    system namespaces no CNP of the set is in (returned second, to be reported)."""
    wanted = frozenset(named)
    if wanted:
        return wanted, ()
    seen = {p.namespace for e in edges for p in (e.source, e.destination) if p.kind is PeerKind.WORKLOAD}
    governed = {p.namespace for p in policies if p.kind is Kind.CNP}
    left_out = tuple(sorted(ns for ns in seen & SYSTEM_NAMESPACES if ns not in governed))
    return frozenset(seen - set(left_out)), left_out


def derive(
    edges: Sequence[Edge],
    samples: Mapping[tuple[object, ...], tuple[Sample, ...]] | None = None,
    scope: frozenset[str] | None = None,
) -> list[Probe]:
    """The probes next to the allowed evidence whose pod sides touch `scope` (all when None)."""
    return _Deriver(edges, samples, scope).run()


def replay(
    probes: Iterable[Probe],
    engine: Engine,
    namespaces: Iterable[str] = (),
    not_probed: Iterable[str] = (),
) -> ProbeReport:
    report = ProbeReport(namespaces=tuple(sorted(namespaces)), not_probed=tuple(not_probed))
    for probe in probes:
        report.probes[probe.kind] += 1
        decision = engine.decide(probe.request)
        if decision.allowed:
            unchecked = decision.egress.l7_unchecked or decision.ingress.l7_unchecked
            report.allowed.append(Leak(probe, decision.egress.allowed_by + decision.ingress.allowed_by, unchecked))
    report.warnings = sorted(engine.warnings)
    return report


def _edge_order(edge: Edge) -> tuple[object, ...]:
    return (edge.source, edge.destination, edge.protocol, edge.port, edge.l7.kind, edge.l7.method, edge.l7.path)


class _Deriver:
    def __init__(
        self,
        edges: Sequence[Edge],
        samples: Mapping[tuple[object, ...], tuple[Sample, ...]] | None,
        scope: frozenset[str] | None,
    ) -> None:
        self.edges = sorted(
            (
                e
                for e in settle(edges)[0]
                # Peers without an identity (unknown, a pod seen only with the world identity) have no rule.
                if e.use in GRANTING and not {e.source.kind, e.destination.kind} & {PeerKind.UNKNOWN, PeerKind.POD}
            ),
            key=_edge_order,
        )
        self.scope = scope
        self.seen = Seen()
        self.parties: dict[Peer, Party] = {}
        self.names: dict[Peer, str] = {}
        self.replayed: dict[tuple[object, ...], L7] = {}
        for edge in self.edges:
            self.seen.add(edge)
            shown = sorted(samples.get(edge.key, ()) if samples else (), key=lambda s: (s.first, s.example))
            for peer, workload, labels, is_source in (
                (edge.source, edge.source_workload, edge.source_namespace_labels, True),
                (edge.destination, edge.destination_workload, edge.destination_namespace_labels, False),
            ):
                self.names[peer] = max(self.names.get(peer, ""), workload)
                if peer not in self.parties:
                    self.parties[peer] = sample_party(peer, shown[0], is_source) if shown else graph_party(peer, labels)
            observed = replace(edge.l7, query=shown[0].query if shown else edge.l7.query)
            if edge.l7.kind in (L7Kind.HTTP, L7Kind.GRPC):
                # Folded paths are replayed with a sample id (see verify).
                path = edge_request(replace(edge, l7=replace(edge.l7, query=False))).l7.path
                observed = replace(observed, path=path)
            self.replayed[edge.key] = observed
        self.dns_servers = {e.destination for e in self.edges if e.is_dns}
        self.found: dict[tuple[ProbeClass, Request], Probe] = {}

    def run(self) -> list[Probe]:
        groups: dict[Pair, list[Edge]] = {}
        for edge in self.edges:
            if edge.source != HOST:
                groups.setdefault((edge.source, edge.destination, edge.protocol, edge.port), []).append(edge)
        self._other_ports(groups)
        for pair, members in groups.items():
            base = next((e for e in members if e.l7.kind is not L7Kind.NONE), members[0])
            self._http(pair, [e for e in members if e.l7.kind in (L7Kind.HTTP, L7Kind.GRPC)])
            self._kafka(pair, [e for e in members if e.l7.kind is L7Kind.KAFKA])
            if any(e.is_dns for e in members):
                self._dns(pair, base)
            self._outside_egress(pair, base)
            self._impostors(pair, base)
        self._world_to_internal()
        self._system_to_world()
        order = list(ProbeClass)
        return sorted(self.found.values(), key=lambda p: (order.index(p.kind), p.example))

    # -- helpers ---------------------------------------------------------------

    def _name(self, peer: Peer) -> str:
        if peer.kind is PeerKind.WORKLOAD:
            return side_label(peer, self.names.get(peer, ""))
        return peer.name or str(peer.kind)

    def _near(self, edge: Edge) -> str:
        what = describe(replace(edge.l7, query=self.replayed[edge.key].query))
        return f"{self._name(edge.source)} -> {self._name(edge.destination)} {edge.protocol}/{edge.port}" + (
            f" {what}" if what else ""
        )

    def _in_scope(self, *parties: Party) -> bool:
        if self.scope is None:
            return True
        return any(p.namespace in self.scope for p in parties if p.is_pod and p.namespace != PROBE_NAMESPACE)

    def _add(
        self,
        kind: ProbeClass,
        base: Edge,
        ends: tuple[tuple[Peer, Party, str], tuple[Peer, Party, str]] | None = None,
        *,
        port: int | None = None,
        protocol: Protocol | None = None,
        l7: L7 | None = None,
    ) -> bool:
        """Record a candidate unless the evidence supports it or it is out of scope; True when recorded."""
        if ends is None:
            ends = (
                (base.source, self.parties[base.source], self._name(base.source)),
                (base.destination, self.parties[base.destination], self._name(base.destination)),
            )
        (source, source_party, source_name), (destination, destination_party, destination_name) = ends
        protocol = base.protocol if protocol is None else protocol
        port = base.port if port is None else port
        l7 = self.replayed[base.key] if l7 is None else l7
        if self.seen.supports(source, destination, protocol, port, l7) or not self._in_scope(
            source_party, destination_party
        ):
            return False
        request = Request(source_party, destination_party, protocol, port, engine_l7(l7))
        key = (kind, request)
        if key in self.found:
            return False
        self.found[key] = Probe(
            kind, source, destination, protocol, port, l7, request, source_name, destination_name, self._near(base)
        )
        return True

    def _take(self, attempts: Iterable[bool], cap: int = PER_EDGE) -> None:
        """Run candidate attempts (a lazy iterable of _add calls) until `cap` were recorded."""
        taken = 0
        for recorded in attempts:
            taken += recorded
            if taken >= cap:
                return

    # -- classes -----------------------------------------------------------------

    def _other_ports(self, groups: Mapping[Pair, list[Edge]]) -> None:
        by_peers: dict[tuple[Peer, Peer], list[Edge]] = {}
        for (source, destination, protocol, _port), members in groups.items():
            if protocol not in ICMP:
                by_peers.setdefault((source, destination), []).append(members[0])
        for members in by_peers.values():
            bases = sorted(members, key=_edge_order)
            candidates = [(e, e.protocol, e.port + 1) for e in bases if e.port < 65535]
            candidates += [(bases[0], Protocol.TCP, port) for port in ADMIN_PORTS]
            self._take(
                self._add(ProbeClass.OTHER_PORT, edge, protocol=protocol, port=port, l7=L7())
                for edge, protocol, port in candidates
            )

    def _http(self, pair: Pair, edges: list[Edge]) -> None:
        """other-method and sibling-path: one observed path per template (ids aside)."""
        firsts: dict[tuple[str, str], Edge] = {}
        for edge in edges:
            firsts.setdefault((edge.l7.method, path_template(edge.l7.path)), edge)
        for edge in firsts.values():
            observed = self.replayed[edge.key]
            if edge.l7.kind is L7Kind.HTTP:
                self._take(
                    (self._add(ProbeClass.OTHER_METHOD, edge, l7=replace(observed, method=m)) for m in PROBE_METHODS),
                    cap=len(PROBE_METHODS),
                )
            self._take(
                self._add(ProbeClass.SIBLING_PATH, edge, l7=replace(observed, path=path))
                for path in sibling_paths(edge.l7, observed.path)
            )

    def _kafka(self, pair: Pair, edges: list[Edge]) -> None:
        """Requests without a topic (group coordination, metadata) are not varied: policies
        grant api keys by role, and the topic is what tells one client's data from another's."""
        if not edges:
            return
        kafka = [e for e in self.edges if e.destination == pair[1] and e.l7.kind is L7Kind.KAFKA]
        used = {e.l7.path for e in kafka if e.source == pair[0]}
        others = [*sorted({e.l7.path for e in kafka} - used - {""}), PROBE_TOPIC]
        for edge in edges:
            if not edge.l7.path:
                continue
            self._take((self._add(ProbeClass.OTHER_TOPIC, edge, l7=replace(edge.l7, path=t)) for t in others), cap=2)
            # The role the api key belongs to alone (metadata and apiversions belong to both).
            roles = [role for role, keys in KAFKA_ROLE_KEYS.items() if edge.l7.method.lower() in keys]
            opposite = OPPOSITE_ROLE.get(roles[0], "") if len(roles) == 1 else ""
            if opposite:
                self._add(ProbeClass.OTHER_ROLE, edge, l7=replace(edge.l7, method=opposite))

    def _dns(self, pair: Pair, base: Edge) -> None:
        """A DNS server forwarding upstream asks whatever its clients ask (their own egress limits
        the names): only clients are probed."""
        if base.source.kind is not PeerKind.WORKLOAD or base.source in self.dns_servers:
            return
        resolved = sorted(self.seen.names.get(base.source, set()))
        names = [EXFIL_NAME, *(s for s in map(sibling_name, resolved) if s)]
        self._take((self._add(ProbeClass.UNLISTED_DNS, base, l7=L7(L7Kind.DNS, path=name)) for name in names), cap=3)

    def _outside_egress(self, pair: Pair, base: Edge) -> None:
        source, destination = pair[0], pair[1]
        if source.kind is not PeerKind.WORKLOAD or not outside(destination):
            return
        ends = (source, self.parties[source], self._name(source))
        if destination.kind is PeerKind.FQDN:
            names = [EXFIL_NAME, *([s] if (s := sibling_name(destination.name)) else [])]
            for name in names:
                probe = Party(ip=PROBE_ADDRESS, names=(name,), world=True)
                target = Peer(PeerKind.FQDN, name=name)
                self._add(ProbeClass.UNLISTED_FQDN, base, (ends, (target, probe, name)), l7=L7())
        else:
            probe = Party(ip=PROBE_ADDRESS, world=True)
            self._add(ProbeClass.UNLISTED_ADDRESS, base, (ends, (PROBE_WORLD, probe, PROBE_ADDRESS)), l7=L7())

    def _impostors(self, pair: Pair, base: Edge) -> None:
        """other-namespace-pod (to workloads) and unrelated-pod (to anything), from a pod client."""
        source, destination = pair[0], pair[1]
        if source.kind is not PeerKind.WORKLOAD:
            return
        to = (destination, self.parties[destination], self._name(destination))
        pod = self.parties[source]
        # A DNS server answers every pod of the cluster (flowgen opens its DNS ports to the cluster on
        # purpose): a pod of another namespace looking a name up is no near miss; its own egress decides.
        if destination.kind is PeerKind.WORKLOAD and not base.is_dns:
            peer = Peer(PeerKind.WORKLOAD, source.cluster, PROBE_NAMESPACE, source.labels)
            name = f"{PROBE_NAMESPACE}/{self.names.get(source) or 'pod'} (labels of {self._name(source)})"
            self._add(ProbeClass.OTHER_NAMESPACE_POD, base, ((peer, elsewhere(pod), name), to))
        peer = Peer(PeerKind.WORKLOAD, source.cluster, source.namespace, (f"k8s:app.kubernetes.io/name={PROBE_APP}",))
        self._add(ProbeClass.UNRELATED_POD, base, ((peer, unrelated(pod), f"{source.namespace}/{PROBE_APP}"), to))

    def _world_to_internal(self) -> None:
        """Every ingress port of a workload only seen from inside the cluster (the node included), with an
        observed L7 request when there is one."""
        by_port: dict[tuple[Peer, Protocol, int], Edge] = {}
        for edge in self.edges:
            if edge.destination.kind is PeerKind.WORKLOAD:
                key = (edge.destination, edge.protocol, edge.port)
                if key not in by_port or (by_port[key].l7.kind is L7Kind.NONE and edge.l7.kind is not L7Kind.NONE):
                    by_port[key] = edge
        for (destination, protocol, port), base in by_port.items():
            if (WORLD, destination, protocol, port) in self.seen.l4:
                # Open to the outside already: neither probe is a near miss.
                continue
            to = (destination, self.parties[destination], self._name(destination))
            address = Party(ip=PROBE_ADDRESS, world=True)
            self._add(ProbeClass.WORLD_TO_INTERNAL, base, ((PROBE_WORLD, address, f"world {PROBE_ADDRESS}"), to))
            # The API server can arrive as remote-node (ref cilium-policy.md §5.2), and a DNS server answers
            # the nodes' host-network pods too: neither port is a near miss for another node.
            if base.is_dns or (KUBE_APISERVER, destination, protocol, port) in self.seen.l4:
                continue
            node = Party(((f"reserved:{Entity.REMOTE_NODE}", ""),))
            self._add(ProbeClass.WORLD_TO_INTERNAL, base, ((REMOTE_NODE, node, str(Entity.REMOTE_NODE)), to))

    def _system_to_world(self) -> None:
        """Each system pod seen, next to its own egress when it was seen sending."""
        bases: dict[Peer, Edge] = {}
        for side in ("source", "destination"):
            for edge in self.edges:
                peer = edge.source if side == "source" else edge.destination
                if peer.kind is PeerKind.WORKLOAD and peer.namespace in SYSTEM_NAMESPACES:
                    bases.setdefault(peer, edge)
        address = Party(ip=PROBE_ADDRESS, world=True)
        for peer, base in bases.items():
            ends = ((peer, self.parties[peer], self._name(peer)), (PROBE_WORLD, address, PROBE_ADDRESS))
            for port in SYSTEM_PORTS:
                self._add(ProbeClass.SYSTEM_TO_WORLD, base, ends, protocol=Protocol.TCP, port=port, l7=L7())
