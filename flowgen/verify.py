"""Replay observed requests against a policy set: what would it drop?

Each allowed (or audit) edge of the graph becomes one request for the engine,
with the edge's counts. Workloads are matched by their stable identity labels
(see flowgen.identity; labels dropped as volatile, such as `version` or
`job-name`, are not there to match), outside destinations by the DNS name or
address the graph recorded, HTTP paths with a query string as `path?`, and
folded paths with a sample id in place of `{id}`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from flowgen.engine import Decision, Engine, L7Request, Party, Request
from flowgen.evidence import L7Kind, Use
from flowgen.graph import ID_PLACEHOLDER, REST_PLACEHOLDER, Edge, settle
from flowgen.identity import Peer, PeerKind, split_label
from flowgen.policy import CLUSTER_KEY, NAMESPACE_KEY

# Stands in for `{id}` and a trailing `*` of folded paths when they are replayed.
SAMPLE_ID = "1"
SAMPLE_REST = "x"


def party(peer: Peer, namespace_labels: tuple[str, ...] = ()) -> Party:
    """How the engine sees a graph peer (with its namespace's labels, for namespace-label selectors)."""
    if peer.kind is PeerKind.WORKLOAD:
        labels = []
        for label in (*peer.labels, *namespace_labels):
            source, key, value = split_label(label)
            labels.append((f"{source or 'k8s'}:{key}", value))
        labels.append((NAMESPACE_KEY, peer.namespace))
        if peer.cluster:
            labels.append((CLUSTER_KEY, peer.cluster))
        return Party(tuple(sorted(labels)))
    if peer.kind is PeerKind.ENTITY:
        if peer.name == "world":
            return Party(world=True)
        return Party(((f"reserved:{peer.name}", ""),))
    if peer.kind is PeerKind.CIDR:
        return Party(ip=peer.name.split("/", 1)[0], world=True)
    if peer.kind is PeerKind.FQDN:
        return Party(names=(peer.name,), world=True)
    return Party()


def _path(edge: Edge) -> str:
    path = edge.l7.path
    if edge.folded:
        segments = [SAMPLE_ID if s == ID_PLACEHOLDER else s for s in path.split("/")]
        if segments and segments[-1] == REST_PLACEHOLDER:
            segments[-1] = SAMPLE_REST
        path = "/".join(segments)
    return path + ("?" if edge.l7.query else "")


def request(edge: Edge) -> Request:
    kind = edge.l7.kind
    if kind in (L7Kind.HTTP, L7Kind.GRPC):
        l7 = L7Request("http", method=edge.l7.method, path=_path(edge))
    elif kind is L7Kind.DNS:
        l7 = L7Request("dns", name=edge.l7.path)
    elif kind is L7Kind.KAFKA:
        l7 = L7Request("kafka", method=edge.l7.method, topic=edge.l7.path)
    else:
        l7 = L7Request()
    source = party(edge.source, edge.source_namespace_labels)
    destination = party(edge.destination, edge.destination_namespace_labels)
    return Request(source, destination, edge.protocol, edge.port, l7)


def describe_l7(edge: Edge) -> str:
    if edge.l7.kind is L7Kind.NONE:
        return ""
    if edge.l7.kind is L7Kind.DNS:
        return f"DNS {edge.l7.path}"
    if edge.l7.kind is L7Kind.KAFKA:
        return f"Kafka {edge.l7.method} {edge.l7.path}"
    return f"{edge.l7.method} {edge.l7.path}{'?...' if edge.l7.query else ''}{' (folded)' if edge.folded else ''}"


@dataclass(frozen=True, slots=True)
class Drop:
    """An observed request the policies would drop, with who refuses it and why."""

    source: str
    destination: str
    protocol: str
    port: int
    l7: str
    # "egress" (the source may not send it), "ingress" (the destination may not take it) or both.
    refused_by: tuple[str, ...]
    # Explicit deny rules that match it (empty: no allow rule matched).
    denied_by: tuple[str, ...]
    flows: int
    first: datetime
    last: datetime
    nodes: tuple[str, ...]
    # A DNS lookup: when it is refused, names behind toFQDNs rules stop resolving.
    dns: bool

    @property
    def example(self) -> str:
        where = f" on {self.nodes[0]}" if self.nodes else ""
        what = f" {self.l7}" if self.l7 else ""
        seen = f"first seen {self.first:%Y-%m-%d %H:%M:%S} UTC{where}"
        return f"{self.source} -> {self.destination} {self.protocol}/{self.port}{what}, {seen}"


@dataclass
class Verification:
    requests: int = 0
    flows: int = 0
    allowed_flows: int = 0
    # Requests that passed at L4 on an L7 port without L7 detail to check.
    l7_unchecked: int = 0
    drops: list[Drop] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # Per policy rule ("Kind/ns/name egress[0]"): flows it allowed.
    used: dict[str, int] = field(default_factory=dict)

    @property
    def dropped_flows(self) -> int:
        return sum(d.flows for d in self.drops)


def side_label(peer: Peer, workload: str) -> str:
    if peer.kind is PeerKind.WORKLOAD:
        return f"{peer.namespace}/{workload or ','.join(peer.labels)}"
    return peer.name or str(peer.kind)


def verify(edges: Sequence[Edge], engine: Engine, namespaces: Iterable[str] = ()) -> Verification:
    """Replay the allowed evidence (edges touching `namespaces`, all when empty)."""
    wanted = set(namespaces)
    result = Verification()
    for edge in settle(edges)[0]:
        if edge.use not in (Use.ALLOWED, Use.AUDIT):
            continue
        if wanted and not wanted & {edge.source.namespace, edge.destination.namespace}:
            continue
        decision: Decision = engine.decide(request(edge))
        result.requests += 1
        result.flows += edge.flows
        for rule in decision.egress.allowed_by + decision.ingress.allowed_by:
            result.used[rule] = result.used.get(rule, 0) + edge.flows
        if decision.allowed:
            result.allowed_flows += edge.flows
            if decision.egress.l7_unchecked or decision.ingress.l7_unchecked:
                result.l7_unchecked += 1
            continue
        refused = tuple(
            side
            for side, verdict in (("egress", decision.egress), ("ingress", decision.ingress))
            if not verdict.allowed
        )
        result.drops.append(
            Drop(
                source=side_label(edge.source, edge.source_workload),
                destination=side_label(edge.destination, edge.destination_workload),
                protocol=edge.protocol,
                port=edge.port,
                l7=describe_l7(edge),
                refused_by=refused,
                denied_by=decision.egress.denied_by + decision.ingress.denied_by,
                flows=edge.flows,
                first=edge.first,
                last=edge.last,
                nodes=edge.nodes,
                dns=edge.l7.kind is L7Kind.DNS or (edge.port == 53 and edge.protocol in ("UDP", "TCP")),
            )
        )
    result.drops.sort(key=lambda d: (not d.dns, d.source, d.destination, d.protocol, d.port, d.l7))
    result.warnings = sorted(engine.warnings)
    return result
