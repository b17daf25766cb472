"""Where flows come from: Hubble JSON lines (files, gzip, stdin) and protobuf messages.

Every input ends up as `flowgen.flow.Flow` values, so everything downstream is
shared. There is one conversion from protobuf (`flow_from_proto`, used by the
gRPC client and by the tolerant JSON path) and one fast JSON path.

The fast path decodes each line with msgspec straight into typed structs that
declare only the fields flowgen reads (the others are skipped unparsed), which
is faster than building a dict of the whole line with a general JSON parser.
It accepts exactly what Hubble writes: proto field names, enum names, 64-bit
integers as strings. Anything else that protobuf's JSON mapping allows
(camelCase keys, enum numbers, numbers as strings, fields from a newer Hubble)
falls back to protobuf's own JSON parser, line by line, so those lines are
read correctly, only more slowly.

Line shapes (see ref hubble-api.md §3): the `{"flow": ...}` wrapper written by
`hubble observe -o json/jsonpb` and by the exporter (which also writes
`lost_events`, `agent_event`, `debug_event` and `node_status` lines), and the
bare Flow / LostEvent objects of hubble CLI <= v0.10.
"""

from __future__ import annotations

import enum
import gzip
import re
import sys
import typing
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, TypeVar

import msgspec
import orjson
from google.protobuf import json_format
from google.protobuf.descriptor import EnumDescriptor
from google.protobuf.message import Message

from flowgen._pb.flow import flow_pb2
from flowgen._pb.observer import observer_pb2
from flowgen.errors import InputError, MalformedInputError
from flowgen.flow import (
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

STDIN = "-"
# How many malformed-line locations a report keeps (all are counted).
MAX_PROBLEMS_KEPT = 20


@dataclass(frozen=True, slots=True)
class Problem:
    """A malformed record: where it is and what is wrong with it."""

    origin: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.origin} line {self.line}: {self.reason}"


@dataclass(slots=True)
class ReadReport:
    """What a reader saw besides flows. Filled in as the reader is consumed."""

    lines: int = 0
    flows: int = 0
    # Non-flow records that were counted and skipped, by kind
    # (agent_event, debug_event, node_status, empty).
    skipped: Counter[str] = field(default_factory=Counter)
    # Events Hubble itself lost (ring buffer or queue overflow), by LostEventSource.
    lost_events: Counter[str] = field(default_factory=Counter)
    malformed: int = 0
    problems: list[Problem] = field(default_factory=list)
    # Fields (and enum values) from a newer Hubble that were ignored; warned once.
    unknown_fields: list[str] = field(default_factory=list)

    def add_problem(self, problem: Problem) -> None:
        self.malformed += 1
        if len(self.problems) < MAX_PROBLEMS_KEPT:
            self.problems.append(problem)


# ---------------------------------------------------------------------------
# Protobuf -> Flow: the one conversion shared by gRPC and the tolerant JSON path

_E = TypeVar("_E", bound=enum.Enum)
_M = TypeVar("_M", bound=Message)
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


# ---------------------------------------------------------------------------
# The fast JSON path

# A field flowgen does not read: checked to be JSON, never turned into objects.
_Skip = msgspec.Raw
_SKIPPED = msgspec.Raw()


class _HubbleFlow(Flow, frozen=True, forbid_unknown_fields=True):
    """Flow plus the fields Hubble writes that flowgen does not read.

    Declaring them (as Raw, so they are skipped unparsed) is what lets an
    unknown field, from a newer Hubble, stand out.
    """

    drop_reason_code: int = msgspec.field(default=0, name="drop_reason")
    emitter: _Skip = _SKIPPED
    auth_type: _Skip = _SKIPPED
    ethernet: _Skip = _SKIPPED
    tunnel: _Skip = _SKIPPED
    node_labels: _Skip = _SKIPPED
    reply: _Skip = _SKIPPED
    debug_capture_point: _Skip = _SKIPPED
    interface: _Skip = _SKIPPED
    proxy_port: _Skip = _SKIPPED
    trace_context: _Skip = _SKIPPED
    sock_xlate_point: _Skip = _SKIPPED
    socket_cookie: _Skip = _SKIPPED
    cgroup_id: _Skip = _SKIPPED
    trace_reason: _Skip = _SKIPPED
    file: _Skip = _SKIPPED
    ip_trace_id: _Skip = _SKIPPED
    egress_allowed_by: _Skip = _SKIPPED
    ingress_allowed_by: _Skip = _SKIPPED
    egress_denied_by: _Skip = _SKIPPED
    ingress_denied_by: _Skip = _SKIPPED
    policy_log: _Skip = _SKIPPED
    aggregate: _Skip = _SKIPPED
    Summary: _Skip = _SKIPPED
    extensions: _Skip = _SKIPPED


class _Lost(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    source: str = ""
    num_events_lost: int = 0
    cpu: _Skip = _SKIPPED
    first: _Skip = _SKIPPED
    last: _Skip = _SKIPPED


class _Line(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """One GetFlowsResponse / ExportEvent line."""

    flow: _HubbleFlow | None = None
    node_status: _Skip = _SKIPPED
    lost_events: _Lost | None = None
    agent_event: _Skip = _SKIPPED
    debug_event: _Skip = _SKIPPED
    node_name: str = ""
    time: datetime | None = None


# The oneof keys of an ExportEvent line, in both JSON spellings.
_WRAPPER_KEYS = frozenset(
    [
        "flow",
        "node_status",
        "nodeStatus",
        "lost_events",
        "lostEvents",
        "agent_event",
        "agentEvent",
        "debug_event",
        "debugEvent",
    ]
)
_LOST_KEYS = frozenset(["source", "num_events_lost", "numEventsLost", "cpu", "first", "last"])
_UNKNOWN_FIELD = re.compile(r'has no field named "([^"]+)" at "([^"]*)"')
_UNKNOWN_ENUM = re.compile(r"Invalid enum value (\S+) for enum type (\S+) at (\S+?)\.?$", re.M)


def _flow_from_wire(flow: _HubbleFlow, time: datetime | None, node_name: str) -> Flow:
    event = flow.event_type
    if (
        flow.time is None
        or not flow.node_name
        or (
            flow.drop_reason is DropReason.DROP_REASON_UNKNOWN
            and (flow.drop_reason_code or (event is not None and event.type == EventType.DROP))
        )
    ):
        # Rare: a field-masked export, or an agent that fills only the old numeric drop reason.
        flow = msgspec.structs.replace(
            flow,
            time=flow.time or time,
            node_name=flow.node_name or node_name,
            drop_reason=drop_reason_of(flow.drop_reason, flow.drop_reason_code, flow.event_type),
        )
    return flow


class JsonLineReader:
    """Turns Hubble JSON lines into flows, recording everything else in a ReadReport.

    One reader per run: the unknown-field warning is given once per reader.
    `warn` receives that warning and each malformed-line message as they happen.
    With `strict`, the first malformed line raises MalformedInputError.
    """

    def __init__(
        self,
        report: ReadReport | None = None,
        *,
        strict: bool = False,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.report = report if report is not None else ReadReport()
        self.strict = strict
        self._warn = warn or (lambda _message: None)
        # strict=False: accept numbers written as strings, as protobuf JSON does
        # (Hubble writes 64-bit integers that way).
        self._wrapped = msgspec.json.Decoder(_Line, strict=False)
        self._bare = msgspec.json.Decoder(_HubbleFlow, strict=False)

    def read(self, lines: Iterable[bytes], origin: str) -> Iterator[Flow]:
        """Yield the flows in `lines` (the content of `origin`, a file name or "stdin")."""
        report = self.report
        decode: Callable[[bytes], _Line | _HubbleFlow] = self._wrapped.decode
        other: Callable[[bytes], _Line | _HubbleFlow] = self._bare.decode
        # The loop is the ingest hot path: counters stay local until the end,
        # blank lines are noticed only when they fail to decode, and the common
        # complete, non-drop flow is yielded as decoded.
        counted = flows = 0
        dropped = Verdict.DROPPED
        try:
            for number, raw in enumerate(lines, start=1):
                counted += 1
                try:
                    try:
                        line = decode(raw)
                    except msgspec.ValidationError:
                        # Files are all one shape: after a bare (legacy) flow, try that first.
                        line = other(raw)
                        decode, other = other, decode
                except msgspec.ValidationError:
                    flow = self._tolerant_or_problem(raw, origin, number)
                except msgspec.DecodeError as err:
                    if raw.isspace() or not raw:
                        counted -= 1
                    else:
                        self._problem(Problem(origin, number, _json_error(err, raw)))
                    continue
                else:
                    if type(line) is _Line:
                        wire = line.flow
                        if wire is None:
                            self._other(line)
                            continue
                        if (
                            wire.time is None
                            or not wire.node_name
                            or wire.verdict is dropped
                            or wire.drop_reason_code
                            or (wire.event_type is not None and wire.event_type.type == EventType.DROP)
                        ):
                            flow = _flow_from_wire(wire, line.time, line.node_name)
                        else:
                            flow = wire
                    else:
                        flow = _flow_from_wire(typing.cast(_HubbleFlow, line), None, "")
                if flow is not None:
                    flows += 1
                    yield flow
        finally:
            report.lines += counted
            report.flows += flows

    def _other(self, line: _Line) -> None:
        report = self.report
        if line.lost_events is not None:
            report.skipped["lost_events"] += 1
            lost = line.lost_events
            report.lost_events[lost.source or "UNKNOWN_LOST_EVENT_SOURCE"] += lost.num_events_lost
        elif line.node_status:
            report.skipped["node_status"] += 1
        elif line.agent_event:
            report.skipped["agent_event"] += 1
        elif line.debug_event:
            report.skipped["debug_event"] += 1
        else:
            report.skipped["empty"] += 1

    def _tolerant_or_problem(self, raw: bytes, origin: str, number: int) -> Flow | None:
        try:
            return self._tolerant(raw)
        except _MalformedError as bad:
            self._problem(Problem(origin, number, str(bad)))
            return None

    def _problem(self, problem: Problem) -> None:
        if self.strict:
            raise MalformedInputError(problem.origin, problem.line, problem.reason)
        self.report.add_problem(problem)
        self._warn(f"skipping malformed record: {problem}")

    def _tolerant(self, raw: bytes) -> Flow | None:
        """Read a line the fast path refused, with protobuf's own JSON parser.

        Handles every legal protobuf JSON spelling, the legacy bare objects,
        and fields from a newer Hubble (ignored, with one warning per run).
        """
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as err:
            raise _MalformedError(f"not valid JSON ({err})") from None
        if not isinstance(obj, dict):
            raise _MalformedError(f"expected a JSON object, got {type(obj).__name__}")
        if obj.keys() & _WRAPPER_KEYS or not obj:
            event = self._parse(obj, observer_pb2.ExportEvent())
            kind = event.WhichOneof("response_types")
            if kind == "flow":
                time = time_from_ns(event.time.ToNanoseconds()) if event.HasField("time") else None
                return flow_from_proto(event.flow, time=time, node_name=event.node_name)
            self.report.skipped[kind or "empty"] += 1
            if kind == "lost_events":
                self._count_lost(event.lost_events)
            return None
        if obj.keys() <= _LOST_KEYS and isinstance(obj.get("source"), str | int):
            self.report.skipped["lost_events"] += 1
            self._count_lost(self._parse(obj, flow_pb2.LostEvent()))
            return None
        return flow_from_proto(self._parse(obj, flow_pb2.Flow()))

    def _count_lost(self, lost: flow_pb2.LostEvent) -> None:
        self.report.lost_events[lost_source_name(lost.source)] += lost.num_events_lost

    def _parse(self, obj: dict[str, object], message: _M) -> _M:
        try:
            return json_format.ParseDict(obj, message)
        except json_format.ParseError as err:
            unknown = _unknown_name(str(err))
            if unknown is None:
                raise _MalformedError(_protobuf_error(str(err))) from None
        self._note_unknown(unknown)
        try:
            return json_format.ParseDict(obj, message, ignore_unknown_fields=True)
        except json_format.ParseError as err:
            raise _MalformedError(_protobuf_error(str(err))) from None

    def _note_unknown(self, name: str) -> None:
        report = self.report
        if name in report.unknown_fields:
            return
        report.unknown_fields.append(name)
        if len(report.unknown_fields) == 1:
            self._warn(
                f"ignoring {name}, which this flowgen does not know (a newer Hubble?); "
                "further unknown fields are listed in the summary"
            )


class _MalformedError(Exception):
    """A line even protobuf's parser refuses; the message says why."""


def _unknown_name(message: str) -> str | None:
    if match := _UNKNOWN_FIELD.search(message):
        where = match.group(2).split(".", 1)
        return f"field {'.'.join([*where[1:], match.group(1)])!r}"
    if match := _UNKNOWN_ENUM.search(message):
        where = match.group(3).split(".", 1)[-1]
        return f"value {match.group(1)} of {where!r}"
    return None


def _protobuf_error(message: str) -> str:
    # protobuf appends the whole list of valid fields; the first line says it all.
    return message.splitlines()[0].rstrip(".")


_ERROR_BYTE = re.compile(r"\(byte (\d+)\)")


def _json_error(err: msgspec.DecodeError, raw: bytes) -> str:
    text = str(err)
    at = _ERROR_BYTE.search(text)
    if "truncated" in text or (at and int(at.group(1)) >= len(raw.rstrip(b"\r\n"))):
        return "not valid JSON: the line ends in the middle of a value (truncated?)"
    return f"not valid JSON: {text.removeprefix('JSON is malformed: ')}"


# ---------------------------------------------------------------------------
# Files and stdin

_GZIP_MAGIC = b"\x1f\x8b"


def check_inputs(paths: Sequence[str]) -> None:
    """Fail before reading anything when an input cannot be opened."""
    if not paths:
        raise InputError("no input given: pass --input-file FILE (or - for stdin)")
    if list(paths).count(STDIN) > 1:
        raise InputError("stdin (-) can be read only once; name it a single time")
    for name in paths:
        if name == STDIN:
            continue
        path = Path(name)
        if not path.exists():
            raise InputError(f"cannot read {name}: no such file. Check the path")
        if path.is_dir():
            raise InputError(f"cannot read {name}: it is a directory. Pass the files in it instead")


def _open(name: str, stack: ExitStack) -> IO[bytes]:
    if name == STDIN:
        stream: IO[bytes] = sys.stdin.buffer
    else:
        try:
            stream = stack.enter_context(Path(name).open("rb"))  # noqa: SIM115 - closed by the stack
        except OSError as err:
            raise InputError(f"cannot read {name}: {err.strerror}") from err
    peek = getattr(stream, "peek", None)
    head = peek(2)[:2] if peek is not None else b""
    if head == _GZIP_MAGIC:
        return typing.cast(IO[bytes], stack.enter_context(gzip.GzipFile(fileobj=stream, mode="rb")))
    return stream


def read_files(paths: Sequence[str], reader: JsonLineReader) -> Iterator[Flow]:
    """Yield the flows of each file in turn ("-" is stdin; gzip is detected by content)."""
    check_inputs(paths)
    for name in paths:
        with ExitStack() as stack:
            stream = _open(name, stack)
            try:
                yield from reader.read(stream, "stdin" if name == STDIN else name)
            except (OSError, EOFError, gzip.BadGzipFile) as err:
                raise InputError(f"reading {name}: {err}. The file may be cut short or not gzip") from err
