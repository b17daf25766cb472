"""The graph frame: evidence aggregated into rows that add up across runs, nodes and clusters.

An edge is (source peer, destination peer, protocol, destination port, L7
attribute) plus what the evidence said about it (allowed, audit, denied with
the drop reason). The frame is a pandas DataFrame with one row per edge, hour
and observing node (`KEY`), carrying counts and first/last times (`VALUES`);
every value merges by sum / min / max, so graphs from several runs, nodes or
clusters add up by concatenating and grouping again (`merge`). `collapse`
folds hours and nodes into one row per edge for reading; `edges` turns rows
into typed `Edge` values. Beside the rows, a graph holds the pods it saw and
the identities they had (flowgen.graph.pods): reading its edges resolves the
pods Hubble gave the world identity to the identity they have elsewhere.

pandas stays inside the graph package: the frame is the exchange format
between the builder and the store; typed values are what the rest reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import pandas as pd

from flowgen.graph import pods
from flowgen.graph.edge import Edge
from flowgen.graph.evidence import L7, L7Kind, Use
from flowgen.graph.identity import Peer, PeerKind
from flowgen.ingest.flow import Protocol

# One row per (edge, hour, node). Strings are "" when not applicable.
KEY = (
    "hour",
    "use",
    "drop_reason",
    "src_kind",
    "src_cluster",
    "src_ns",
    "src_labels",
    "src_name",
    "dst_kind",
    "dst_cluster",
    "dst_ns",
    "dst_labels",
    "dst_name",
    "protocol",
    "port",
    "l7",
    "method",
    "path",
    "folded",
    "node",
)
# flows: connections (or L7 requests), a connection seen at both ends counted
# once; events: every evidence event; query: an HTTP request had a query string;
# *_workload: a display name (owner or app label), not part of the identity.
# *_nslabels: the namespace's labels as Cilium sees them (io.cilium.k8s.namespace.labels.*),
# so policies that select peers by namespace label can be checked against the graph.
# delivered: sightings that show the request got past the destination's ingress
# (a trace into the pod, an ingress verdict or proxy); 0 means egress-side evidence only.
VALUES = (
    "flows",
    "events",
    "first",
    "last",
    "query",
    "src_workload",
    "dst_workload",
    "src_nslabels",
    "dst_nslabels",
    "delivered",
)
COLUMNS = KEY + VALUES
_AGG = {
    "flows": "sum",
    "events": "sum",
    "first": "min",
    "last": "max",
    "query": "max",
    "src_workload": "max",
    "dst_workload": "max",
    "src_nslabels": "max",
    "dst_nslabels": "max",
    "delivered": "sum",
}
# Edge identity without the hour and node dimensions.
EDGE_KEY = tuple(column for column in KEY if column not in ("hour", "node"))
# Labels are joined with "," in the frame: Kubernetes label keys and values cannot contain it.
LABEL_SEPARATOR = ","
# The hour of a flow without a time (rare: field-masked exports).
NO_TIME = datetime(1970, 1, 1, tzinfo=UTC)
_TIME_DTYPE: Final = "datetime64[us, UTC]"
_TIMES = ("hour", "first", "last")


def empty() -> pd.DataFrame:
    """A graph with no edges, with the columns and types every graph has."""
    return _typed(pd.DataFrame({column: [] for column in COLUMNS}))


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    types = {
        "port": "int32",
        "folded": "bool",
        "query": "bool",
        "flows": "int64",
        "events": "int64",
        "delivered": "int64",
    }
    frame = frame.astype({c: types.get(c, "str") for c in COLUMNS if c not in _TIMES})
    for column in _TIMES:
        frame[column] = pd.to_datetime(frame[column], utc=True).astype(_TIME_DTYPE)
    return frame[list(COLUMNS)]


def merge(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Add graphs up: rows with the same key are combined (sum, min, max)."""
    frames = [f for f in frames if len(f)]
    if not frames:
        return empty()
    combined = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    grouped = combined.groupby(list(KEY), sort=False, dropna=False).agg(_AGG).reset_index()
    return _typed(grouped)


def since_filter(frame: pd.DataFrame, since: datetime | None) -> pd.DataFrame:
    """Rows from hours that overlap [since, ...). Times are kept per hour, so the
    window starts at the hour `since` falls in."""
    if since is None or frame.empty:
        return frame
    start = pd.Timestamp(since.astimezone(UTC).replace(minute=0, second=0, microsecond=0))
    return frame[frame["hour"] >= start]


def namespace_filter(frame: pd.DataFrame, namespaces: Iterable[str]) -> pd.DataFrame:
    """Edges with either end in one of the namespaces (all edges when none are given)."""
    wanted = list(namespaces)
    if not wanted or frame.empty:
        return frame
    return frame[frame["src_ns"].isin(wanted) | frame["dst_ns"].isin(wanted)]


def _joined(names: Iterable[str]) -> str:
    return LABEL_SEPARATOR.join(sorted(set(names) - {""}))


def collapse(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per edge: hours and nodes folded; `nodes` is the sorted, comma-joined
    list of nodes that saw it (and so are the resolved pods of each side, when the
    frame has pods.RESOLVED columns). Rows are sorted, so the result is deterministic."""
    resolved = [column for column in pods.RESOLVED if column in frame.columns]
    columns = [*EDGE_KEY, *VALUES, "nodes", *resolved]
    if frame.empty:
        return pd.DataFrame({column: [] for column in columns})
    grouped = frame.groupby(list(EDGE_KEY), dropna=False)
    result = grouped.agg(_AGG).join(grouped["node"].agg(_joined).rename("nodes"))
    for column in resolved:
        result = result.join(grouped[column].agg(_joined))
    result = result.reset_index()
    return result.sort_values(list(EDGE_KEY), kind="stable", ignore_index=True)[columns]


def to_csv(collapsed: pd.DataFrame) -> str:
    """A collapsed graph as CSV (times in RFC 3339, UTC)."""
    text: str = collapsed.to_csv(index=False, date_format="%Y-%m-%dT%H:%M:%S.%fZ")
    return text


def _split(joined: str) -> tuple[str, ...]:
    return tuple(joined.split(LABEL_SEPARATOR)) if joined else ()


class _Shared:
    """Values many rows repeat (peers, L7 attributes, label and node lists, enum members), made
    once and shared: on a graph of 100,000 workloads this halves the memory of its edges."""

    def __init__(self) -> None:
        self.peers: dict[tuple[Any, ...], Peer] = {}
        self.l7s: dict[tuple[Any, ...], L7] = {}
        self.splits: dict[str, tuple[str, ...]] = {}
        self.members: dict[tuple[type, Any], Any] = {}

    def peer(self, key: tuple[Any, ...]) -> Peer:
        found = self.peers.get(key)
        if found is None:
            kind, cluster, namespace, labels, name = (str(value) for value in key)
            found = self.peers[key] = Peer(
                PeerKind(kind), cluster=cluster, namespace=namespace, labels=self.split(labels), name=name
            )
        return found

    def l7(self, key: tuple[Any, ...]) -> L7:
        found = self.l7s.get(key)
        if found is None:
            kind, method, path, query = key
            found = self.l7s[key] = L7(self.member(L7Kind, kind), str(method), str(path), bool(query))
        return found

    def split(self, joined: Any) -> tuple[str, ...]:
        text = str(joined)
        found = self.splits.get(text)
        if found is None:
            found = self.splits[text] = _split(text)
        return found

    def member(self, enum: type, value: Any) -> Any:
        found = self.members.get((enum, value))
        if found is None:
            found = self.members[(enum, value)] = enum(value)
        return found


def edges(collapsed: pd.DataFrame) -> list[Edge]:
    """The rows of a collapsed graph as Edge values, in the frame's (sorted) order. Read column
    by column (a row-wise read boxes every value), with repeated values shared (`_Shared`)."""
    if collapsed.empty:
        return []
    column = {name: collapsed[name].tolist() for name in collapsed.columns}
    count = len(collapsed)
    shared = _Shared()
    sides = [f"{side}_{field}" for side in ("src", "dst") for field in ("kind", "cluster", "ns", "labels", "name")]
    sources = zip(*(column[name] for name in sides[:5]), strict=True)
    destinations = zip(*(column[name] for name in sides[5:]), strict=True)
    l7s = zip(column["l7"], column["method"], column["path"], column["query"], strict=True)
    no_pods = [""] * count
    result = []
    for i, source, destination, l7 in zip(range(count), sources, destinations, l7s, strict=True):
        src_pods, dst_pods = column.get("src_pods", no_pods)[i], column.get("dst_pods", no_pods)[i]
        result.append(
            Edge(
                source=shared.peer(source),
                destination=shared.peer(destination),
                protocol=shared.member(Protocol, column["protocol"][i]),
                port=int(column["port"][i]),
                l7=shared.l7(l7),
                folded=bool(column["folded"][i]),
                use=shared.member(Use, column["use"][i]),
                drop_reason=str(column["drop_reason"][i]),
                flows=int(column["flows"][i]),
                events=int(column["events"][i]),
                first=pd.Timestamp(column["first"][i]).to_pydatetime(),
                last=pd.Timestamp(column["last"][i]).to_pydatetime(),
                nodes=shared.split(column["nodes"][i]),
                source_workload=str(column["src_workload"][i]),
                destination_workload=str(column["dst_workload"][i]),
                source_namespace_labels=shared.split(column["src_nslabels"][i]),
                destination_namespace_labels=shared.split(column["dst_nslabels"][i]),
                delivered=int(column["delivered"][i]) > 0,
                source_pods=pods.resolved_pods(str(src_pods)) if src_pods else (),
                destination_pods=pods.resolved_pods(str(dst_pods)) if dst_pods else (),
            )
        )
    return result


class Graph:
    """The communication graph as the rest of flowgen sees it: typed values out, pandas inside.

    Rows are per edge, hour and observing node (see KEY); `edges()` folds hours and
    nodes into one `Edge` per edge, sorted, with the pods Hubble gave the world identity
    resolved (flowgen.graph.pods). Graphs add up with `Graph.merge`.
    """

    __slots__ = ("frame", "pods")

    def __init__(self, frame: pd.DataFrame | None = None, sightings: pd.DataFrame | None = None) -> None:
        # The rows (KEY + VALUES columns); only the graph package reads them.
        self.frame = frame if frame is not None else empty()
        # The pods seen and the identities they had (pods.COLUMNS).
        self.pods = sightings if sightings is not None else pods.empty()

    @staticmethod
    def merge(graphs: Iterable[Graph]) -> Graph:
        """Graphs added up: rows with the same key are combined (sum, min, max)."""
        graphs = list(graphs)
        return Graph(merge([graph.frame for graph in graphs]), pods.merge([graph.pods for graph in graphs]))

    def __len__(self) -> int:
        """The number of rows (edge, hour and node)."""
        return len(self.frame)

    def since(self, when: datetime | None) -> Graph:
        """Rows from the hour `when` falls in onwards (all rows for None)."""
        return Graph(since_filter(self.frame, when), pods.since(self.pods, when))

    def touching(self, namespaces: Iterable[str]) -> Graph:
        """Edges with either end in one of the namespaces (all edges when none are given)."""
        # Every sighting stays: a pod of another namespace is resolved from them too.
        return Graph(namespace_filter(self.frame, namespaces), self.pods)

    def _resolved(self) -> pd.DataFrame:
        return pods.resolve(self.frame, self.pods)

    def edges(self) -> list[Edge]:
        """One Edge per edge, hours and nodes folded, world-identity pods resolved, in a
        deterministic order."""
        return edges(collapse(self._resolved()))

    def namespaces(self) -> list[str]:
        """The namespaces either end of some edge is in, sorted."""
        frame = self.frame
        return sorted((set(frame["src_ns"]) | set(frame["dst_ns"])) - {""})

    def window(self) -> tuple[datetime, datetime] | None:
        """The first and last time evidence was seen (None for an empty graph)."""
        if self.frame.empty:
            return None
        first, last = self.frame["first"].min(), self.frame["last"].max()
        return pd.Timestamp(first).to_pydatetime(), pd.Timestamp(last).to_pydatetime()

    def edge_count(self) -> int:
        """How many edges edges() would give (counted by a 64-bit hash of each row's edge key: far
        cheaper in memory than folding the rows, and a collision would only make the count one less)."""
        resolved = self._resolved()
        if resolved.empty:
            return 0
        return int(pd.util.hash_pandas_object(resolved[list(EDGE_KEY)], index=False).nunique())

    def csv(self) -> str:
        """One row per edge as CSV (times in RFC 3339, UTC), in the order of edges()."""
        collapsed = collapse(self._resolved())
        return to_csv(collapsed.drop(columns=[c for c in pods.RESOLVED if c in collapsed.columns]))
