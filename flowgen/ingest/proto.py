"""Protobuf -> Flow: the one conversion shared by the live gRPC stream and the tolerant JSON path.

Also the jsonpb line for a response (what `--save-flows` writes) and the small
conversions both paths need (nanosecond times, drop reasons, lost-event sources).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import orjson
from google.protobuf import json_format
from google.protobuf.descriptor import EnumDescriptor
from google.protobuf.message import Message

from flowgen._pb.flow import flow_pb2
from flowgen._pb.observer import observer_pb2
from flowgen.ingest.flow import (
    DNS,
    HTTP,
    ICMP,
    IGMP,
    IP,
    TCP,
    VRRP,
    CiliumEventType,
    DropReason,
    Endpoint,
    EventType,
    Flow,
    FlowType,
    HTTPHeader,
    IPVersion,
    Kafka,
    L7Type,
    Layer4,
    Layer7,
    ObservationPoint,
    Ports,
    Service,
    TCPFlags,
    TrafficDirection,
    Verdict,
    Workload,
)

_E = TypeVar("_E", bound=enum.Enum)
_T = TypeVar("_T")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _by_number(enum_cls: type[_E], descriptor: EnumDescriptor) -> dict[int, _E]:
    return {v.number: enum_cls(v.name) for v in descriptor.values}


_PB_VERDICT = _by_number(Verdict, flow_pb2.Verdict.DESCRIPTOR)
_PB_FLOW_TYPE = _by_number(FlowType, flow_pb2.FlowType.DESCRIPTOR)
_PB_DIRECTION = _by_number(TrafficDirection, flow_pb2.TrafficDirection.DESCRIPTOR)
_PB_POINT = _by_number(ObservationPoint, flow_pb2.TraceObservationPoint.DESCRIPTOR)
_PB_IP_VERSION = _by_number(IPVersion, flow_pb2.IPVersion.DESCRIPTOR)
_PB_L7_TYPE = _by_number(L7Type, flow_pb2.L7FlowType.DESCRIPTOR)
_DROP_BY_CODE = _by_number(DropReason, flow_pb2.DropReason.DESCRIPTOR)
_PB_LOST_SOURCE = {v.number: v.name for v in flow_pb2.LostEventSource.DESCRIPTOR.values}


def time_from_ns(ns: int) -> datetime:
    """Nanoseconds since the epoch to a UTC datetime, rounded half up to the microsecond."""
    return _EPOCH + timedelta(microseconds=(ns + 500) // 1000)


def drop_reason_of(desc: DropReason, code: int, event_type: CiliumEventType | None) -> DropReason:
    """The drop reason, from whichever of Hubble's three places for it is filled.

    `drop_reason_desc` is the current field; older agents and field-masked
    exports fill only the deprecated numeric `drop_reason`; a drop event may
    carry the code only as `event_type.sub_type` (ref hubble-api.md §2.3).
    """
    if desc is not DropReason.DROP_REASON_UNKNOWN:
        return desc
    if not code and event_type is not None and event_type.type == EventType.DROP:
        code = event_type.sub_type
    return _DROP_BY_CODE.get(code, DropReason.DROP_REASON_UNKNOWN)


def _endpoint_from_proto(e: flow_pb2.Endpoint) -> Endpoint:
    return Endpoint(
        endpoint_id=e.ID,
        identity=e.identity,
        cluster_name=e.cluster_name,
        namespace=e.namespace,
        labels=tuple(e.labels),
        pod_name=e.pod_name,
        workloads=tuple(Workload(name=w.name, kind=w.kind) for w in e.workloads),
    )


def _l4_from_proto(l4: flow_pb2.Layer4) -> Layer4:
    kind = l4.WhichOneof("protocol")
    if kind == "TCP":
        t = l4.TCP
        flags = None
        if t.HasField("flags"):
            f = t.flags
            flags = TCPFlags(
                fin=f.FIN, syn=f.SYN, rst=f.RST, psh=f.PSH, ack=f.ACK, urg=f.URG, ece=f.ECE, cwr=f.CWR, ns=f.NS
            )
        return Layer4(tcp=TCP(source_port=t.source_port, destination_port=t.destination_port, flags=flags))
    if kind in ("UDP", "SCTP"):
        p = getattr(l4, kind)
        ports = Ports(source_port=p.source_port, destination_port=p.destination_port)
        return Layer4(udp=ports) if kind == "UDP" else Layer4(sctp=ports)
    if kind in ("ICMPv4", "ICMPv6"):
        i = getattr(l4, kind)
        icmp = ICMP(type=i.type, code=i.code)
        return Layer4(icmpv4=icmp) if kind == "ICMPv4" else Layer4(icmpv6=icmp)
    if kind == "VRRP":
        return Layer4(vrrp=VRRP(type=l4.VRRP.type, vrid=l4.VRRP.vrid, priority=l4.VRRP.priority))
    if kind == "IGMP":
        return Layer4(igmp=IGMP(type=l4.IGMP.type, group_address=l4.IGMP.group_address))
    return Layer4()


def _l7_from_proto(l7: flow_pb2.Layer7) -> Layer7:
    record = l7.WhichOneof("record")
    http = dns = kafka = None
    if record == "http":
        h = l7.http
        http = HTTP(
            code=h.code,
            method=h.method,
            url=h.url,
            protocol=h.protocol,
            headers=tuple(HTTPHeader(key=x.key, value=x.value) for x in h.headers),
        )
    elif record == "dns":
        d = l7.dns
        dns = DNS(
            query=d.query,
            ips=tuple(d.ips),
            ttl=d.ttl,
            cnames=tuple(d.cnames),
            observation_source=d.observation_source,
            rcode=d.rcode,
            qtypes=tuple(d.qtypes),
            rrtypes=tuple(d.rrtypes),
        )
    elif record == "kafka":
        k = l7.kafka
        kafka = Kafka(
            error_code=k.error_code,
            api_version=k.api_version,
            api_key=k.api_key,
            correlation_id=k.correlation_id,
            topic=k.topic,
        )
    return Layer7(
        type=_PB_L7_TYPE.get(l7.type, L7Type.UNKNOWN_L7_TYPE),
        latency_ns=l7.latency_ns,
        dns=dns,
        http=http,
        kafka=kafka,
    )


def _optional(m: Message, name: str, build: Callable[[Any], _T]) -> _T | None:
    return build(getattr(m, name)) if m.HasField(name) else None


def _service(s: flow_pb2.Service) -> Service:
    return Service(name=s.name, namespace=s.namespace)


def _ip(ip: flow_pb2.IP) -> IP:
    return IP(
        source=ip.source,
        source_xlated=ip.source_xlated,
        destination=ip.destination,
        version=_PB_IP_VERSION.get(ip.ipVersion, IPVersion.IP_NOT_USED),
        encrypted=ip.encrypted,
    )


def _event_type(e: flow_pb2.CiliumEventType) -> CiliumEventType:
    return CiliumEventType(type=e.type, sub_type=e.sub_type)


def flow_from_proto(m: flow_pb2.Flow, *, time: datetime | None = None, node_name: str = "") -> Flow:
    """Convert a protobuf Flow. `time` and `node_name` fill in when the flow lacks them
    (they come from the enclosing GetFlowsResponse / ExportEvent)."""
    event_type = _optional(m, "event_type", _event_type)
    return Flow(
        time=time_from_ns(m.time.ToNanoseconds()) if m.HasField("time") else time,
        uuid=m.uuid,
        verdict=_PB_VERDICT.get(m.verdict, Verdict.VERDICT_UNKNOWN),
        drop_reason=drop_reason_of(
            _DROP_BY_CODE.get(m.drop_reason_desc, DropReason.DROP_REASON_UNKNOWN), m.drop_reason, event_type
        ),
        ip=_optional(m, "IP", _ip),
        l4=_optional(m, "l4", _l4_from_proto),
        source=_endpoint_from_proto(m.source),
        destination=_endpoint_from_proto(m.destination),
        flow_type=_PB_FLOW_TYPE.get(m.Type, FlowType.UNKNOWN_TYPE),
        node_name=m.node_name or node_name,
        source_names=tuple(m.source_names),
        destination_names=tuple(m.destination_names),
        l7=_optional(m, "l7", _l7_from_proto),
        event_type=event_type,
        source_service=_optional(m, "source_service", _service),
        destination_service=_optional(m, "destination_service", _service),
        traffic_direction=_PB_DIRECTION.get(m.traffic_direction, TrafficDirection.TRAFFIC_DIRECTION_UNKNOWN),
        policy_match_type=m.policy_match_type,
        observation_point=_PB_POINT.get(m.trace_observation_point, ObservationPoint.UNKNOWN_POINT),
        is_reply=m.is_reply.value if m.HasField("is_reply") else None,
    )


def response_line(response: observer_pb2.GetFlowsResponse) -> bytes:
    """One JSON line as `hubble observe -o jsonpb` writes it (proto field names,
    enum names, 64-bit integers as strings), readable by hubble and flowgen."""
    document = json_format.MessageToDict(response, preserving_proto_field_name=True)
    return orjson.dumps(document) + b"\n"


def lost_source_name(number: int) -> str:
    """The LostEventSource name for a protobuf enum number."""
    return _PB_LOST_SOURCE.get(number, "UNKNOWN_LOST_EVENT_SOURCE")
