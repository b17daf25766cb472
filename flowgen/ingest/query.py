"""What to ask Hubble Relay for: the flows a GetFlows call requests, and the fields it reads."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from flowgen._pb.flow import flow_pb2
from flowgen._pb.observer import observer_pb2
from flowgen.errors import RelayError

# The Flow fields flowgen reads (flowgen.ingest.proto.flow_from_proto), plus the policies
# that allowed or denied a flow. Sent as GetFlowsRequest.field_mask (Cilium 1.16+;
# older servers ignore it and send whole flows).
FIELD_MASK: tuple[str, ...] = (
    "time",
    "uuid",
    "verdict",
    "drop_reason",
    "drop_reason_desc",
    "IP",
    "l4",
    "source",
    "destination",
    "Type",
    "node_name",
    "source_names",
    "destination_names",
    "l7",
    "event_type",
    "source_service",
    "destination_service",
    "traffic_direction",
    "policy_match_type",
    "trace_observation_point",
    "is_reply",
    "ingress_allowed_by",
    "egress_allowed_by",
    "ingress_denied_by",
    "egress_denied_by",
)


@dataclass(frozen=True, slots=True)
class Query:
    """Which flows to ask for."""

    # Server-side filter: flows from or to a pod in any of these namespaces; empty means all.
    namespaces: tuple[str, ...] = ()
    # Flows at or after this time (UTC is assumed for a naive datetime); None means from now
    # with follow, or all that the relay still holds without.
    since: datetime | None = None
    # Stop at this time. Sent to the server only without follow (Hubble ends the stream at the
    # first flow after it); with follow the stream is ended when the clock reaches it.
    until: datetime | None = None
    # Keep streaming new flows after those already in the relay's buffers.
    follow: bool = True
    # Flow fields to ask for (GetFlowsRequest.field_mask); empty means whole flows.
    fields: tuple[str, ...] = FIELD_MASK

    def __post_init__(self) -> None:
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                object.__setattr__(self, name, value.replace(tzinfo=UTC))
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise RelayError(f"--since ({self.since.isoformat()}) must be before --until ({self.until.isoformat()})")
        for namespace in self.namespaces:
            if "/" in namespace or not namespace.strip():
                raise RelayError(
                    f"invalid namespace {namespace!r}: give a Kubernetes namespace name such as kube-system"
                )
        for path in self.fields:
            if not _is_flow_field(path):
                raise RelayError(
                    f"{path!r} is not a Flow field (field mask paths are proto field names such as source.labels)"
                )


def _is_flow_field(path: str) -> bool:
    fields = flow_pb2.Flow.DESCRIPTOR.fields_by_name
    *parents, last = path.split(".")
    for part in parents:
        parent = fields.get(part)
        if parent is None or parent.message_type is None:
            return False
        fields = parent.message_type.fields_by_name
    return last in fields


def flows_request(query: Query, *, since: datetime | None = None) -> observer_pb2.GetFlowsRequest:
    """The GetFlowsRequest for `query`; `since` overrides query.since (to resume a stream)."""
    request = observer_pb2.GetFlowsRequest(follow=query.follow)
    if query.namespaces:
        # As `hubble observe -n a -n b` sends it (ref §5.1): one filter on the source pod and one on the
        # destination pod, each listing every namespace as an "ns/" prefix; the whitelist keeps a flow
        # that matches either.
        prefixes = [f"{namespace}/" for namespace in query.namespaces]
        request.whitelist.extend(
            [flow_pb2.FlowFilter(source_pod=prefixes), flow_pb2.FlowFilter(destination_pod=prefixes)]
        )
    start = since or query.since
    if start is not None:
        request.since.FromDatetime(start)
    if query.until is not None and not query.follow:
        request.until.FromDatetime(query.until)
    if query.fields:
        request.field_mask.paths.extend(query.fields)
    return request
