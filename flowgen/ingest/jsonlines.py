"""Hubble JSON lines -> Flow values: the fast msgspec path and protobuf's tolerant fallback.

Lines end up as the same `flowgen.ingest.flow.Flow` values the live stream
gives, so everything downstream is shared; the tolerant path uses the one
conversion from protobuf (flowgen.ingest.proto).

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

import re
import typing
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

import msgspec
import orjson
from google.protobuf import json_format
from google.protobuf.message import Message

from flowgen._pb.flow import flow_pb2
from flowgen._pb.observer import observer_pb2
from flowgen.errors import MalformedInputError
from flowgen.ingest.events import Lost
from flowgen.ingest.flow import DropReason, EventType, Flow, Verdict
from flowgen.ingest.proto import drop_reason_of, flow_from_proto, lost_source_name, time_from_ns

_M = TypeVar("_M", bound=Message)

# How many malformed-line locations a report keeps (all are counted).
MAX_PROBLEMS_KEPT = 20
# How many malformed lines are warned about one by one (the rest are counted).
WARNED_PROBLEMS = 10


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
    # Non-flow records that were counted and skipped, by kind (agent_event, debug_event,
    # node_status, empty; lost_events lines are also yielded as Lost events).
    skipped: Counter[str] = field(default_factory=Counter)
    malformed: int = 0
    problems: list[Problem] = field(default_factory=list)
    # Fields (and enum values) from a newer Hubble that were ignored; warned once.
    unknown_fields: list[str] = field(default_factory=list)

    def add_problem(self, problem: Problem) -> None:
        self.malformed += 1
        if len(self.problems) < MAX_PROBLEMS_KEPT:
            self.problems.append(problem)


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
    """Turns Hubble JSON lines into flows and Lost events, recording everything else in a ReadReport.

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
        # The number of the line read last (1-based, within the current input).
        self.line = 0
        # The last line read was malformed and had no line end: a writer may still be appending it.
        self.cut_short = False

    def read(self, lines: Iterable[bytes], origin: str, *, first: int = 1) -> Iterator[Flow | Lost]:
        """Yield the flows and lost-event notices in `lines` (the content of `origin`, a file name or
        "stdin"; `first` is the number of its first line, when earlier lines were skipped)."""
        self.line = first - 1
        self.cut_short = False
        report = self.report
        decode: Callable[[bytes], _Line | _HubbleFlow] = self._wrapped.decode
        other: Callable[[bytes], _Line | _HubbleFlow] = self._bare.decode
        # The loop is the ingest hot path: counters stay local until the end,
        # blank lines are noticed only when they fail to decode, and the common
        # complete, non-drop flow is yielded as decoded.
        counted = flows = 0
        dropped = Verdict.DROPPED
        try:
            for number, raw in enumerate(lines, start=first):
                self.line = number
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
                        self.cut_short = not raw.endswith(b"\n")
                    continue
                else:
                    if type(line) is _Line:
                        wire = line.flow
                        if wire is None:
                            lost = self._other(line)
                            if lost is not None:
                                yield lost
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
                    flows += type(flow) is not Lost
                    yield flow
        finally:
            report.lines += counted
            report.flows += flows

    def _other(self, line: _Line) -> Lost | None:
        report = self.report
        if line.lost_events is not None:
            report.skipped["lost_events"] += 1
            lost = line.lost_events
            return Lost(lost.source or "UNKNOWN_LOST_EVENT_SOURCE", lost.num_events_lost)
        if line.node_status:
            report.skipped["node_status"] += 1
        elif line.agent_event:
            report.skipped["agent_event"] += 1
        elif line.debug_event:
            report.skipped["debug_event"] += 1
        else:
            report.skipped["empty"] += 1
        return None

    def _tolerant_or_problem(self, raw: bytes, origin: str, number: int) -> Flow | Lost | None:
        try:
            return self._tolerant(raw)
        except _MalformedError as bad:
            self._problem(Problem(origin, number, str(bad)))
            self.cut_short = not raw.endswith(b"\n")
            return None

    def _problem(self, problem: Problem) -> None:
        if self.strict:
            raise MalformedInputError(problem.origin, problem.line, problem.reason)
        self.report.add_problem(problem)
        if self.report.malformed <= WARNED_PROBLEMS:
            self._warn(f"skipping malformed record: {problem}")
        if self.report.malformed == WARNED_PROBLEMS:
            self._warn("further malformed records are counted, not shown one by one (see the summary)")

    def _tolerant(self, raw: bytes) -> Flow | Lost | None:
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
            return _lost(event.lost_events) if kind == "lost_events" else None
        if obj.keys() <= _LOST_KEYS and isinstance(obj.get("source"), str | int):
            self.report.skipped["lost_events"] += 1
            return _lost(self._parse(obj, flow_pb2.LostEvent()))
        return flow_from_proto(self._parse(obj, flow_pb2.Flow()))

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


def _lost(lost: flow_pb2.LostEvent) -> Lost:
    return Lost(lost_source_name(lost.source), lost.num_events_lost)


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
