"""The graph for people and other tools: table rows, JSON records, and pictures in
Mermaid (renders on GitHub and GitLab) and Graphviz DOT.

Pictures draw one arrow per (source, destination) pair and verdict, labelled with
its protocols and ports; denied traffic is drawn dashed. Output is deterministic:
nodes and arrows are sorted, node ids are assigned in that order.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from flowgen.graph.edge import Edge
from flowgen.graph.evidence import Use
from flowgen.graph.identity import Peer, PeerKind

# An arrow label lists at most this many ports, then "+N more".
MAX_PORTS_SHOWN = 6


def several_clusters(edges: Sequence[Edge]) -> bool:
    """Whether the edges involve workloads of more than one cluster (then labels name the cluster)."""
    return len({p.cluster for e in edges for p in (e.source, e.destination) if p.kind is PeerKind.WORKLOAD}) > 1


def peer_label(peer: Peer, workload: str, *, cluster: bool = False) -> str:
    """What a node is called in a picture or a table: `namespace/name` for a workload
    (`cluster:namespace/name` when asked), the entity, DNS name or CIDR otherwise."""
    if peer.kind is PeerKind.WORKLOAD:
        name = workload or ",".join(label.split(":", 1)[-1] for label in peer.labels) or "?"
        prefix = f"{peer.cluster}:" if cluster and peer.cluster else ""
        return f"{prefix}{peer.namespace}/{name}"
    if peer.kind is PeerKind.ENTITY:
        return peer.name
    if peer.kind is PeerKind.POD:
        return f"{peer.namespace}/{peer.name} (world identity)"
    return peer.name or str(peer.kind)


def _arrows(edges: Sequence[Edge]) -> tuple[dict[Peer, str], dict[tuple[Peer, Peer, Use], list[str]]]:
    names: dict[Peer, str] = {}
    arrows: dict[tuple[Peer, Peer, Use], set[str]] = defaultdict(set)
    cluster = several_clusters(edges)
    for edge in edges:
        for peer, workload in ((edge.source, edge.source_workload), (edge.destination, edge.destination_workload)):
            names[peer] = max(names.get(peer, ""), peer_label(peer, workload, cluster=cluster))
        arrows[(edge.source, edge.destination, edge.use)].add(f"{edge.protocol}/{edge.port}")
    labelled = {}
    for key, ports in arrows.items():
        shown = sorted(ports, key=lambda p: (p.split("/")[0], int(p.split("/")[1] or 0)))
        extra = len(shown) - MAX_PORTS_SHOWN
        labelled[key] = shown[:MAX_PORTS_SHOWN] + ([f"+{extra} more"] if extra > 0 else [])
    return names, labelled


def _ids(names: dict[Peer, str]) -> dict[Peer, str]:
    ordered = sorted(names, key=lambda peer: (names[peer], peer))
    return {peer: f"n{index}" for index, peer in enumerate(ordered)}


def _in_order(
    arrows: dict[tuple[Peer, Peer, Use], list[str]], ids: dict[Peer, str]
) -> list[tuple[tuple[Peer, Peer, Use], list[str]]]:
    return sorted(arrows.items(), key=lambda item: (ids[item[0][0]], ids[item[0][1]], item[0][2]))


def _quote_mermaid(text: str) -> str:
    return text.replace('"', "#quot;")


def mermaid(edges: Sequence[Edge]) -> str:
    names, arrows = _arrows(edges)
    ids = _ids(names)
    lines = ["flowchart LR"]
    for peer in sorted(ids, key=lambda p: ids[p]):
        shape = ('["', '"]') if peer.kind is PeerKind.WORKLOAD else ('(["', '"])')
        lines.append(f"  {ids[peer]}{shape[0]}{_quote_mermaid(names[peer])}{shape[1]}")
    for (source, destination, use), ports in sorted(
        arrows.items(), key=lambda i: (ids[i[0][0]], ids[i[0][1]], i[0][2])
    ):
        label = _quote_mermaid(" ".join(ports) + (f" {use}" if use is not Use.ALLOWED else ""))
        arrow = "-.->" if use is Use.DENIED else "-->"
        lines.append(f'  {ids[source]} {arrow}|"{label}"| {ids[destination]}')
    return "\n".join(lines) + "\n"


def _quote_dot(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def dot(edges: Sequence[Edge]) -> str:
    names, arrows = _arrows(edges)
    ids = _ids(names)
    lines = ["digraph flowgen {", "  rankdir=LR;", "  node [fontname=Helvetica];"]
    for peer in sorted(ids, key=lambda p: ids[p]):
        shape = "box" if peer.kind is PeerKind.WORKLOAD else "ellipse"
        lines.append(f"  {ids[peer]} [label={_quote_dot(names[peer])}, shape={shape}];")
    for (source, destination, use), ports in sorted(
        arrows.items(), key=lambda i: (ids[i[0][0]], ids[i[0][1]], i[0][2])
    ):
        style = ", style=dashed, color=red" if use is Use.DENIED else ""
        label = " ".join(ports) + (f" {use}" if use is not Use.ALLOWED else "")
        lines.append(f"  {ids[source]} -> {ids[destination]} [label={_quote_dot(label)}{style}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


TABLE_COLUMNS = ("source", "destination", "port", "l7", "use", "flows", "last seen", "nodes")


def table_rows(edges: Sequence[Edge]) -> list[tuple[str, ...]]:
    """One row per edge, in TABLE_COLUMNS order."""
    cluster = several_clusters(edges)
    rows: list[tuple[str, ...]] = []
    for e in edges:
        l7 = " ".join(part for part in (e.l7.kind, e.l7.method, e.l7.path) if part)
        rows.append(
            (
                peer_label(e.source, e.source_workload, cluster=cluster),
                peer_label(e.destination, e.destination_workload, cluster=cluster),
                f"{e.protocol}/{e.port}",
                l7 + (" (folded)" if e.folded else "") + (" ?query" if e.l7.query else ""),
                str(e.use) + (f" {e.drop_reason}" if e.drop_reason else ""),
                str(e.flows),
                f"{e.last:%Y-%m-%d %H:%M}",
                str(len(e.nodes)),
            )
        )
    return rows


def records(edges: Sequence[Edge]) -> list[dict[str, object]]:
    """One JSON record per edge: readable labels, the peers as typed fields, the evidence."""
    cluster = several_clusters(edges)
    return [
        {
            "source": peer_label(e.source, e.source_workload, cluster=cluster),
            "source_peer": _peer_record(e.source),
            "destination": peer_label(e.destination, e.destination_workload, cluster=cluster),
            "destination_peer": _peer_record(e.destination),
            "protocol": e.protocol,
            "port": e.port,
            "l7": {"kind": str(e.l7.kind), "method": e.l7.method, "path": e.l7.path, "query": e.l7.query}
            if e.l7.kind
            else None,
            "folded": e.folded,
            "use": str(e.use),
            "drop_reason": e.drop_reason or None,
            "flows": e.flows,
            "events": e.events,
            "first": e.first.isoformat(),
            "last": e.last.isoformat(),
            "nodes": list(e.nodes),
        }
        for e in edges
    ]


def _peer_record(peer: Peer) -> dict[str, object]:
    return {
        "kind": str(peer.kind),
        "cluster": peer.cluster or None,
        "namespace": peer.namespace or None,
        "labels": list(peer.labels),
        "name": peer.name or None,
    }
