"""Builders for graph values in table tests: peers, and edges by keyword with sensible defaults."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flowgen.cilium import SERVICEACCOUNT_KEY, Entity
from flowgen.graph.edge import Edge
from flowgen.graph.evidence import L7, Use
from flowgen.graph.identity import Peer, PeerKind, split_label
from flowgen.ingest.flow import Protocol

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
NO_L7 = L7()


def workload(namespace: str, app: str = "", *, cluster: str = "prod", serviceaccount: str = "") -> Peer:
    """A workload peer labelled `app.kubernetes.io/name=<app>` (none when "") and its service account
    (named after the app unless given; "default" for a workload without an app)."""
    labels = [f"{SERVICEACCOUNT_KEY}={serviceaccount or app or 'default'}"]
    if app:
        labels.append(f"k8s:app.kubernetes.io/name={app}")
    return Peer(PeerKind.WORKLOAD, cluster=cluster, namespace=namespace, labels=tuple(sorted(labels)))


def entity(name: Entity) -> Peer:
    return Peer(PeerKind.ENTITY, name=str(name))


def fqdn(name: str) -> Peer:
    return Peer(PeerKind.FQDN, name=name)


def cidr(address: str) -> Peer:
    return Peer(PeerKind.CIDR, name=address)


def edge(
    source: Peer,
    destination: Peer,
    *,
    protocol: Protocol = Protocol.TCP,
    port: int = 80,
    l7: L7 = NO_L7,
    use: Use = Use.ALLOWED,
    flows: int = 3,
    first: datetime = T0,
    span: timedelta = timedelta(hours=2),
    nodes: tuple[str, ...] = ("prod/node-a",),
    folded: bool = False,
    delivered: bool = True,
    source_workload: str | None = None,
    destination_workload: str | None = None,
) -> Edge:
    """An edge; a workload side's display name defaults to its app label's value."""
    return Edge(
        source=source,
        destination=destination,
        protocol=protocol,
        port=port,
        l7=l7,
        folded=folded,
        use=use,
        drop_reason="POLICY_DENIED" if use is Use.DENIED else "",
        flows=flows,
        events=flows,
        first=first,
        last=first + span,
        nodes=nodes,
        source_workload=_display_name(source) if source_workload is None else source_workload,
        destination_workload=_display_name(destination) if destination_workload is None else destination_workload,
        delivered=delivered,
    )


def _display_name(peer: Peer) -> str:
    for label in peer.labels:
        _source, key, value = split_label(label)
        if key == "app.kubernetes.io/name":
            return value
    return ""
