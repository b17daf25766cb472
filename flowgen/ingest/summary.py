"""A summary of a set of flows: what `flowgen observe` prints about its input."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from flowgen.ingest.flow import DropReason, Flow


@dataclass(slots=True)
class FlowSummary:
    """Counts over the flows that passed the filters (the kept ones)."""

    kept: int = 0
    # Flows left out by the namespace filter.
    filtered_out: int = 0
    first: datetime | None = None
    last: datetime | None = None
    # Flows per namespace; a flow counts for both of its endpoints' namespaces.
    namespaces: Counter[str] = field(default_factory=Counter)
    verdicts: Counter[str] = field(default_factory=Counter)
    # Drop reasons of DROPPED flows.
    drop_reasons: Counter[str] = field(default_factory=Counter)
    nodes: set[str] = field(default_factory=set)


def touches(flow: Flow, namespaces: frozenset[str]) -> bool:
    """Whether either endpoint of the flow is in one of the namespaces."""
    return flow.source.namespace in namespaces or flow.destination.namespace in namespaces


def count(flow: Flow, summary: FlowSummary, namespaces: frozenset[str] = frozenset()) -> bool:
    """Count the flow into `summary`; whether it is kept. With `namespaces`, only flows
    with an endpoint in one of them are kept (the others are counted as filtered out)."""
    if namespaces and not touches(flow, namespaces):
        summary.filtered_out += 1
        return False
    summary.kept += 1
    when = flow.time
    if when is not None:
        if summary.first is None or when < summary.first:
            summary.first = when
        if summary.last is None or when > summary.last:
            summary.last = when
    for namespace in {flow.source.namespace, flow.destination.namespace} - {""}:
        summary.namespaces[namespace] += 1
    summary.verdicts[flow.verdict.value] += 1
    if flow.drop_reason is not DropReason.DROP_REASON_UNKNOWN:
        summary.drop_reasons[flow.drop_reason.value] += 1
    if flow.node_name:
        summary.nodes.add(flow.node_name)
    return True
