"""Edges of the collapsed graph as typed values, and which allowed evidence a policy drop contradicts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from flowgen.cilium import DNS_PORT
from flowgen.graph.evidence import L7, L7Kind, Use
from flowgen.graph.identity import Peer
from flowgen.ingest.flow import Protocol


@dataclass(frozen=True, slots=True, order=True)
class ResolvedPod:
    """A pod Hubble gave the world identity (Cilium's IP cache had not learned its address
    yet), resolved to the identity the same pod has in other flows of the window."""

    namespace: str
    pod: str
    # How it was matched: "pod name", "owner <name>" or "address <ip>".
    by: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.pod}"


@dataclass(frozen=True, slots=True)
class Edge:
    """One edge of the collapsed graph, as typed values."""

    source: Peer
    destination: Peer
    protocol: Protocol
    # The destination port; the ICMP type for ICMP.
    port: int
    l7: L7
    # The path is a pattern made when too many distinct paths were seen (see fold).
    folded: bool
    use: Use
    drop_reason: str
    flows: int
    events: int
    first: datetime
    last: datetime
    nodes: tuple[str, ...]
    source_workload: str
    destination_workload: str
    # "k8s:io.cilium.k8s.namespace.labels.<key>=<value>" of each side's namespace.
    source_namespace_labels: tuple[str, ...] = ()
    destination_namespace_labels: tuple[str, ...] = ()
    # Some sighting showed the request past the destination's ingress (see VALUES).
    delivered: bool = True
    # Pods Hubble gave the world identity on some flows of this edge, resolved to this side's
    # peer: the identity they have in other flows (see flowgen.graph.pods).
    source_pods: tuple[ResolvedPod, ...] = ()
    destination_pods: tuple[ResolvedPod, ...] = ()

    @property
    def is_dns(self) -> bool:
        """A DNS lookup: seen at L7, or UDP/TCP to the DNS port."""
        return self.l7.kind is L7Kind.DNS or (self.port == DNS_PORT and self.protocol in (Protocol.UDP, Protocol.TCP))

    @property
    def key(self) -> tuple[object, ...]:
        """What identifies the edge among the allowed and denied evidence (see Sighting.edge_key)."""
        return (
            self.source,
            self.destination,
            self.protocol,
            self.port,
            self.l7.kind,
            self.l7.method,
            self.l7.path,
            self.use,
        )


@dataclass(frozen=True, slots=True)
class Sample:
    """One concrete request behind an allowed edge, as the flows showed it: what replaying it
    needs beyond the edge. The edge names a workload by its stable labels only; a sample keeps
    each workload side's full identity labels (`version`, `job-name`, ...), so that policies
    selecting on those are judged as in the cluster, and each outside side's address."""

    # Identity labels as Hubble wrote them; () for sides that are not workloads.
    source_labels: tuple[str, ...]
    destination_labels: tuple[str, ...]
    # The IP address of a side outside the cluster; "" otherwise.
    source_address: str
    destination_address: str
    # HTTP: these requests carried a query string (the edge says whether any did).
    query: bool
    events: int
    first: datetime
    last: datetime
    nodes: tuple[str, ...]
    # The first flow behind it (uuid, time, node), to find it in Hubble.
    example: str


def settle(found: Sequence[Edge]) -> tuple[list[Edge], list[Edge]]:
    """Split allowed evidence into what stands and what a policy drop contradicts: an
    allowed edge seen only on the egress side (its destination never showed it arriving)
    whose source, destination, protocol and port also have policy-denied drops was dropped
    at the destination, so it is not evidence for an allow."""
    denied = {(e.source, e.destination, e.protocol, e.port) for e in found if e.use is Use.DENIED}
    kept, contradicted = [], []
    for edge in found:
        if (
            edge.use is not Use.DENIED
            and not edge.delivered
            and ((edge.source, edge.destination, edge.protocol, edge.port) in denied)
        ):
            contradicted.append(edge)
        else:
            kept.append(edge)
    return kept, contradicted
