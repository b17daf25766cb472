"""Pods Hubble gave the world identity: remembered, then resolved to the identity they have elsewhere.

Real captures (GKE among them) hold flows whose endpoint has the world identity
(2, `reserved:world`) but still carries a namespace and a pod name: the node's
IP cache had not learned the pod's address yet (ref hubble-api.md §2.1). Such
an endpoint becomes a `POD` peer (flowgen.graph.identity), never a CIDR: once
the address resolves, Cilium gives the traffic the pod's own identity, and CIDR
rules never select pods (ref cilium-policy.md §5.3), so a `toCIDR: <pod IP>/32`
would break the connection.

Besides the graph's rows, the builder keeps a table of pod sightings: each pod
name seen on an endpoint with its owner, its address and the peer it was (a
workload; an entity for a host-network pod; `POD` for the world identity),
first and last seen. Sightings add up across runs like the rows (`merge`), and
the store keeps them beside each run's graph, so a pod seen with the world
identity in one run and with its own identity in another is resolved.

When the edges are read (`resolve`, called by Graph.edges), each `POD` peer
becomes the peer the same pod has in the other sightings of the window,
matched by, in this order:

1. namespace and pod name;
2. namespace and owner: pod names change with every rollout. The owner is what
   Hubble reports for pods local to the observing node, else the pod name
   without the suffix its controller adds;
3. namespace and address (the same address in another namespace is another pod).

Among several candidates the one seen last wins. The edge keeps which pods were
resolved into each side and how (Edge.source_pods, destination_pods) for the
notes. A `POD` peer with no match stays as it is: no rule can name it, and
synthesis says so.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, cast

import pandas as pd

from flowgen.graph.edge import ResolvedPod
from flowgen.graph.identity import PeerKind, owner_name
from flowgen.ingest.flow import Endpoint

# One row per pod (its cluster, namespace and name as the endpoint gave them, its owner and
# address) and the peer it was seen as (kind, cluster, ns, labels, name: the graph's side columns).
KEY = ("pod_cluster", "pod_ns", "pod", "owner", "address", "kind", "cluster", "ns", "labels", "name")
# The peer's display name and namespace labels (as the graph's *_workload and *_nslabels), and when.
VALUES = ("workload", "nslabels", "first", "last")
COLUMNS = KEY + VALUES
_AGG = {"workload": "max", "nslabels": "max", "first": "min", "last": "max"}
_PEER = ("kind", "cluster", "ns", "labels", "name")
_TIME_DTYPE: Final = "datetime64[us, UTC]"
# The columns Graph.edges adds while resolving: the pods resolved into each side of a row,
# as "namespace/pod/how", comma-separated once rows are collapsed.
RESOLVED = ("src_pods", "dst_pods")
_POD = str(PeerKind.POD)


def empty() -> pd.DataFrame:
    """No sightings, with the columns and types every sightings table has."""
    return typed(pd.DataFrame({column: [] for column in COLUMNS}))


def typed(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.astype({column: "str" for column in COLUMNS if column not in ("first", "last")})
    for column in ("first", "last"):
        frame[column] = pd.to_datetime(frame[column], utc=True).astype(_TIME_DTYPE)
    return frame[list(COLUMNS)]


def merge(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Sightings added up: rows with the same key are combined (first seen, last seen)."""
    frames = [f for f in frames if len(f)]
    if not frames:
        return empty()
    combined = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return typed(combined.groupby(list(KEY), sort=False, dropna=False).agg(_AGG).reset_index())


def since(frame: pd.DataFrame, when: datetime | None) -> pd.DataFrame:
    """Sightings that reach into the hour `when` falls in, or later (the graph's window)."""
    if when is None or frame.empty:
        return frame
    start = pd.Timestamp(when.astimezone(UTC).replace(minute=0, second=0, microsecond=0))
    return frame[frame["last"] >= start]


@dataclass(frozen=True, slots=True)
class _Seen:
    """A pod seen with a cluster identity: the peer's side columns, its names, when last."""

    cluster: str
    last: pd.Timestamp
    peer: tuple[str, ...]
    workload: str
    nslabels: str


class _Index:
    """The sightings by namespace and pod name, owner and address."""

    def __init__(self, sightings: pd.DataFrame) -> None:
        self.by: dict[str, dict[tuple[str, str], list[_Seen]]] = {
            "pod name": defaultdict(list),
            "owner": defaultdict(list),
            "address": defaultdict(list),
        }
        # What the world-identity sightings said about each pod: its owners and addresses.
        self.owners: dict[tuple[str, str], set[str]] = defaultdict(set)
        self.addresses: dict[tuple[str, str], set[str]] = defaultdict(set)
        for row in sightings.to_dict("records"):
            namespace, pod = str(row["pod_ns"]), str(row["pod"])
            owner, address = str(row["owner"]), str(row["address"])
            if row["kind"] == _POD:
                if owner:
                    self.owners[(namespace, pod)].add(owner)
                if address:
                    self.addresses[(namespace, pod)].add(address)
                continue
            seen = _Seen(
                str(row["pod_cluster"]),
                pd.Timestamp(row["last"]),
                tuple(str(row[column]) for column in _PEER),
                str(row["workload"]),
                str(row["nslabels"]),
            )
            for how, value in (("pod name", pod), ("owner", owner), ("address", address)):
                if value:
                    self.by[how][(namespace, value)].append(seen)

    def find(self, cluster: str, namespace: str, pod: str) -> tuple[_Seen, str] | None:
        """The identity the pod has elsewhere and how it was matched (None: nowhere)."""
        owners = self.owners[(namespace, pod)] | {owner_name(Endpoint(pod_name=pod))}
        steps = (
            ("pod name", [pod]),
            ("owner", sorted(owners - {""})),
            ("address", sorted(self.addresses[(namespace, pod)])),
        )
        for how, values in steps:
            found = [
                (seen, value)
                for value in values
                for seen in self.by[how].get((namespace, value), ())
                if not cluster or not seen.cluster or seen.cluster == cluster
            ]
            if found:
                seen, value = max(found, key=lambda item: (item[0].last, item[0].peer, item[1]))
                return seen, how if how == "pod name" else f"{how} {value}"
        return None


def resolve(frame: pd.DataFrame, sightings: pd.DataFrame) -> pd.DataFrame:
    """The rows with each `POD` peer replaced by the peer the same pod is elsewhere in
    `sightings` (see the module doc), and the RESOLVED columns saying which pods were.
    A frame without `POD` peers comes back as it is, without those columns."""
    sides = [side for side in ("src", "dst") if (frame[f"{side}_kind"] == _POD).any()]
    if not sides:
        return frame
    index = _Index(sightings)
    frame = frame.copy()
    for side in ("src", "dst"):
        marks = pd.Series("", index=frame.index, dtype="str")
        if side in sides:
            columns = [f"{side}_cluster", f"{side}_ns", f"{side}_name"]
            groups = frame[frame[f"{side}_kind"] == _POD].groupby(columns, sort=True).groups
            for key, rows in groups.items():
                cluster, namespace, pod = (str(part) for part in cast(tuple[str, str, str], key))
                hit = index.find(cluster, namespace, pod)
                if hit is None:
                    continue
                seen, how = hit
                frame.loc[rows, [f"{side}_{column}" for column in _PEER]] = list(seen.peer)
                frame.loc[rows, f"{side}_workload"] = seen.workload
                frame.loc[rows, f"{side}_nslabels"] = seen.nslabels
                marks.loc[rows] = f"{namespace}/{pod}/{how}"
        frame[f"{side}_pods"] = marks
    return frame


def resolved_pods(joined: str) -> tuple[ResolvedPod, ...]:
    """The RESOLVED column of a collapsed row as values."""
    found = []
    for item in joined.split(",") if joined else ():
        namespace, pod, how = item.split("/", 2)
        found.append(ResolvedPod(namespace, pod, how))
    return tuple(sorted(found))


def sightings_frame(rows: Iterable[tuple[object, ...]]) -> pd.DataFrame:
    """A sightings table from rows in COLUMNS order."""
    return typed(pd.DataFrame.from_records(list(rows), columns=list(COLUMNS)))
