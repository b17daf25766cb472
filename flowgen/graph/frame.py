"""The graph frame: evidence aggregated into rows that add up across runs, nodes and clusters.

An edge is (source peer, destination peer, protocol, destination port, L7
attribute) plus what the evidence said about it (allowed, audit, denied with
the drop reason). The frame is a pandas DataFrame with one row per edge, hour
and observing node (`KEY`), carrying counts and first/last times (`VALUES`);
every value merges by sum / min / max, so graphs from several runs, nodes or
clusters add up by concatenating and grouping again (`merge`). `collapse`
folds hours and nodes into one row per edge for reading; `edges` turns rows
into typed `Edge` values.

pandas stays inside the graph package: the frame is the exchange format
between the builder and the store; typed values are what the rest reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import pandas as pd

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


def collapse(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per edge: hours and nodes folded; `nodes` is the sorted, comma-joined
    list of nodes that saw it. Rows are sorted, so the result is deterministic."""
    columns = [*EDGE_KEY, *VALUES, "nodes"]
    if frame.empty:
        return pd.DataFrame({column: [] for column in columns})
    nodes = frame.groupby(list(EDGE_KEY), dropna=False)["node"].agg(
        lambda names: LABEL_SEPARATOR.join(sorted(set(names) - {""}))
    )
    values = frame.groupby(list(EDGE_KEY), dropna=False).agg(_AGG)
    result = values.join(nodes.rename("nodes")).reset_index()
    return result.sort_values(list(EDGE_KEY), kind="stable", ignore_index=True)[columns]


def to_csv(collapsed: pd.DataFrame) -> str:
    """A collapsed graph as CSV (times in RFC 3339, UTC)."""
    text: str = collapsed.to_csv(index=False, date_format="%Y-%m-%dT%H:%M:%S.%fZ")
    return text


def _split(joined: str) -> tuple[str, ...]:
    return tuple(joined.split(LABEL_SEPARATOR)) if joined else ()


def _peer(row: dict[Any, Any], side: str) -> Peer:
    labels = str(row[f"{side}_labels"])
    return Peer(
        PeerKind(str(row[f"{side}_kind"])),
        cluster=str(row[f"{side}_cluster"]),
        namespace=str(row[f"{side}_ns"]),
        labels=tuple(labels.split(LABEL_SEPARATOR)) if labels else (),
        name=str(row[f"{side}_name"]),
    )


def edges(collapsed: pd.DataFrame) -> list[Edge]:
    """The rows of a collapsed graph as Edge values, in the frame's (sorted) order."""
    result = []
    for row in collapsed.to_dict("records"):
        nodes = str(row["nodes"])
        result.append(
            Edge(
                source=_peer(row, "src"),
                destination=_peer(row, "dst"),
                protocol=Protocol(row["protocol"]),
                port=int(row["port"]),
                l7=L7(L7Kind(row["l7"]), str(row["method"]), str(row["path"]), bool(row["query"])),
                folded=bool(row["folded"]),
                use=Use(row["use"]),
                drop_reason=str(row["drop_reason"]),
                flows=int(row["flows"]),
                events=int(row["events"]),
                first=pd.Timestamp(row["first"]).to_pydatetime(),
                last=pd.Timestamp(row["last"]).to_pydatetime(),
                nodes=tuple(nodes.split(LABEL_SEPARATOR)) if nodes else (),
                source_workload=str(row["src_workload"]),
                destination_workload=str(row["dst_workload"]),
                source_namespace_labels=_split(str(row["src_nslabels"])),
                destination_namespace_labels=_split(str(row["dst_nslabels"])),
                delivered=int(row["delivered"]) > 0,
            )
        )
    return result


class Graph:
    """The communication graph as the rest of flowgen sees it: typed values out, pandas inside.

    Rows are per edge, hour and observing node (see KEY); `edges()` folds hours and
    nodes into one `Edge` per edge, sorted. Graphs add up with `Graph.merge`.
    """

    __slots__ = ("frame",)

    def __init__(self, frame: pd.DataFrame | None = None) -> None:
        # The rows (KEY + VALUES columns); only the graph package reads them.
        self.frame = frame if frame is not None else empty()

    @staticmethod
    def merge(graphs: Iterable[Graph]) -> Graph:
        """Graphs added up: rows with the same key are combined (sum, min, max)."""
        return Graph(merge([graph.frame for graph in graphs]))

    def __len__(self) -> int:
        """The number of rows (edge, hour and node)."""
        return len(self.frame)

    def since(self, when: datetime | None) -> Graph:
        """Rows from the hour `when` falls in onwards (all rows for None)."""
        return Graph(since_filter(self.frame, when))

    def touching(self, namespaces: Iterable[str]) -> Graph:
        """Edges with either end in one of the namespaces (all edges when none are given)."""
        return Graph(namespace_filter(self.frame, namespaces))

    def edges(self) -> list[Edge]:
        """One Edge per edge, hours and nodes folded, in a deterministic order."""
        return edges(collapse(self.frame))

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
        """How many edges edges() would give."""
        return len(collapse(self.frame))

    def csv(self) -> str:
        """One row per edge as CSV (times in RFC 3339, UTC), in the order of edges()."""
        return to_csv(collapse(self.frame))
