"""The readers: every line shape Hubble writes, bad input, and JSON == protobuf."""

from __future__ import annotations

import gzip
from collections import Counter
from pathlib import Path

import orjson
import pytest
from google.protobuf import json_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowgen._pb.flow import flow_pb2
from flowgen._pb.observer import observer_pb2
from flowgen.errors import InputError, MalformedInputError
from flowgen.ingest.events import Lost
from flowgen.ingest.files import read_files
from flowgen.ingest.flow import DropReason, Flow, L7Type, Protocol, Verdict
from flowgen.ingest.jsonlines import JsonLineReader, ReadReport
from flowgen.ingest.proto import flow_from_proto
from tests.conftest import DEMO, sample_files

FLOW = (
    b'{"flow":{"time":"2024-05-01T10:00:00.123456789Z","verdict":"FORWARDED","IP":{"source":"10.0.0.1",'
    b'"destination":"10.0.0.2","ipVersion":"IPv4"},"l4":{"TCP":{"source_port":40000,"destination_port":80,'
    b'"flags":{"SYN":true}}},"source":{"identity":300,"namespace":"a","labels":["k8s:app=x"],"pod_name":"x-1"},'
    b'"destination":{"identity":301,"namespace":"b","labels":["k8s:app=y"],"pod_name":"y-1"},"Type":"L3_L4",'
    b'"node_name":"n1","event_type":{"type":4},"traffic_direction":"EGRESS",'
    b'"trace_observation_point":"FROM_ENDPOINT","is_reply":false,"Summary":"TCP Flags: SYN"},'
    b'"node_name":"n1","time":"2024-05-01T10:00:00.123456789Z"}'
)


def read(lines: list[bytes], **kwargs: object) -> tuple[list[Flow], ReadReport, list[str]]:
    warnings: list[str] = []
    reader = JsonLineReader(warn=warnings.append, **kwargs)  # type: ignore[arg-type]
    flows = [event for event in reader.read(lines, "flows.jsonl") if isinstance(event, Flow)]
    return flows, reader.report, warnings


def lost_of(lines: list[bytes]) -> Counter[str]:
    """The lost-event notices the reader yields, summed by source."""
    lost: Counter[str] = Counter()
    for event in JsonLineReader().read(lines, "flows.jsonl"):
        if isinstance(event, Lost):
            lost[event.source] += event.count
    return lost


def test_reads_every_real_sample_without_problems() -> None:
    report = ReadReport()
    flows = list(read_files([str(p) for p in sample_files()], JsonLineReader(report)))
    assert report.malformed == 0 and report.unknown_fields == []
    assert len(flows) == report.flows == 33
    assert report.skipped == {"agent_event": 1, "debug_event": 1, "lost_events": 1}


def test_sample_fields_land_where_expected() -> None:
    sample = sample_files()[0].parent.parent
    dns = next(read_files([str(sample / "hubble-otel" / "dns-response-with-ips.jsonl")], JsonLineReader()))
    assert dns.l7 is not None and dns.l7.type is L7Type.RESPONSE and dns.l7.dns is not None
    assert dns.l7.dns.ips == ("10.160.0.203",) and dns.l7.dns.ttl == 30 and dns.is_reply is True
    drop = list(read_files([str(sample / "cilium-docs" / "exporter-fieldmasked-dropped.jsonl")], JsonLineReader()))
    assert drop[1].drop_reason is DropReason.POLICY_DENIED and drop[1].is_reply is None
    assert drop[1].destination_port == 80 and drop[1].source.pod_name == "xwing"
    printer = next(
        read_files([str(sample / "unit-test-fixtures" / "printer_test-jsonpb-dropped.jsonl")], JsonLineReader())
    )
    # Only event_type.sub_type carries the drop code here.
    assert printer.drop_reason is DropReason.POLICY_DENIED and printer.verdict is Verdict.DROPPED


def test_fast_path_values() -> None:
    (flow,), _, _ = read([FLOW])
    assert flow.time is not None and flow.time.isoformat() == "2024-05-01T10:00:00.123457+00:00"
    assert flow.protocol is Protocol.TCP and flow.destination_port == 80
    assert flow.l4 is not None and flow.l4.tcp is not None and flow.l4.tcp.flags is not None
    assert flow.l4.tcp.flags.syn and not flow.l4.tcp.flags.ack
    assert flow.is_reply is False and flow.source.labels == ("k8s:app=x",)
    assert isinstance(flow, Flow)
    # Equal to (and hashed like) the same flow converted from protobuf.
    expected = flow_from_proto(json_format.Parse(FLOW, observer_pb2.GetFlowsResponse()).flow)
    assert flow == expected and hash(flow) == hash(expected)


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        pytest.param(b'{"node_status":{"state_change":"NODE_CONNECTED","node_names":["a"]}}', "node_status"),
        pytest.param(b'{"agent_event":{"type":"X"},"node_name":"n"}', "agent_event"),
        pytest.param(b'{"debug_event":{},"node_name":"n"}', "debug_event"),
        pytest.param(b"{}", "empty"),
    ],
)
def test_non_flow_lines_are_counted_and_skipped(line: bytes, kind: str) -> None:
    flows, report, _ = read([line, FLOW])
    assert len(flows) == 1 and report.skipped == {kind: 1}


def test_lost_events_are_summed_by_source() -> None:
    lost = b'{"lost_events":{"source":"HUBBLE_RING_BUFFER","num_events_lost":"7"},"node_name":"n"}'
    lines = [lost, lost, b'{"lost_events":{"source":1,"numEventsLost":"2"}}']
    _, report, _ = read(lines)
    assert lost_of(lines) == {"HUBBLE_RING_BUFFER": 14, "PERF_EVENT_RING_BUFFER": 2}
    assert report.skipped == {"lost_events": 3}


def test_legacy_bare_flow_and_bare_lost_event() -> None:
    bare = orjson.dumps(orjson.loads(FLOW)["flow"])
    lines = [bare, b'{"source":"PERF_EVENT_RING_BUFFER","num_events_lost":"5","cpu":2}', bare]
    flows, _, _ = read(lines)
    (wrapped,), _, _ = read([FLOW])
    assert flows == [wrapped, wrapped]
    assert lost_of(lines) == {"PERF_EVENT_RING_BUFFER": 5}


def test_camel_case_keys_read_the_same() -> None:
    camel = FLOW.replace(b'"node_name"', b'"nodeName"').replace(b'"destination_port"', b'"destinationPort"')
    (flow,), report, _ = read([camel])
    (expected,), _, _ = read([FLOW])
    assert flow == expected and report.unknown_fields == []


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        pytest.param(FLOW[:120], "not valid JSON: the line ends in the middle of a value (truncated?)", id="truncated"),
        pytest.param(b"hello world", "not valid JSON: invalid character (byte 0)", id="not-json"),
        pytest.param(b"[1, 2]", "expected a JSON object, got list", id="array"),
        pytest.param(
            FLOW.replace(b'"destination_port":80', b'"destination_port":"eighty"'),
            "Failed to parse l4 field: Failed to parse destination_port field: "
            "invalid literal for int() with base 10: 'eighty'",
            id="wrong-type",
        ),
        pytest.param(
            FLOW.replace(b'"is_reply":false', b'"is_reply":"maybe"'),
            "Failed to parse is_reply field: Expected true or false without quotes at ExportEvent.flow.is_reply.value",
            id="bad-bool",
        ),
    ],
)
def test_malformed_lines_are_reported_with_file_and_line_and_the_rest_is_kept(line: bytes, reason: str) -> None:
    flows, report, warnings = read([FLOW, b"", line, FLOW])
    assert len(flows) == 2
    assert report.malformed == 1
    assert str(report.problems[0]) == f"flows.jsonl line 3: {reason}"
    assert warnings == [f"skipping malformed record: flows.jsonl line 3: {reason}"]


def test_strict_stops_at_the_first_malformed_line() -> None:
    with pytest.raises(MalformedInputError) as caught:
        read([FLOW, b"{oops", FLOW], strict=True)
    assert str(caught.value) == (
        "reading flows.jsonl line 2: not valid JSON: object keys must be strings (byte 1). "
        "Fix or remove that line, or run without --strict to skip malformed lines."
    )


def test_unknown_fields_are_ignored_with_one_warning() -> None:
    newer = FLOW.replace(b'"uuid"', b'"x"').replace(b'"verdict"', b'"shiny_new_field":{"a":1},"verdict"')
    newer_l7 = FLOW.replace(b'"pod_name":"x-1"', b'"pod_name":"x-1","pod_color":"red"')
    flows, report, warnings = read([FLOW, newer, newer, newer_l7])
    assert len(flows) == 4 and flows[0] == flows[1] == flows[2]
    assert flows[3].source.pod_name == "x-1"
    assert report.unknown_fields == ["field 'flow.shiny_new_field'", "field 'flow.source.pod_color'"]
    assert warnings == [
        "ignoring field 'flow.shiny_new_field', which this flowgen does not know (a newer Hubble?); "
        "further unknown fields are listed in the summary"
    ]
    assert report.malformed == 0


def test_unknown_enum_value_is_ignored_with_a_warning() -> None:
    (flow,), report, _ = read([FLOW.replace(b'"FORWARDED"', b'"TELEPORTED"')])
    assert flow.verdict is Verdict.VERDICT_UNKNOWN
    assert report.unknown_fields == ["value TELEPORTED of 'flow.verdict'"]


def test_gzip_and_several_files(tmp_path: Path) -> None:
    plain = tmp_path / "a.jsonl"
    plain.write_bytes(FLOW + b"\n")
    packed = tmp_path / "events.log.1"  # rotated exporter file: gzip detected by content
    packed.write_bytes(gzip.compress(FLOW + b"\n" + FLOW + b"\n"))
    report = ReadReport()
    flows = list(read_files([str(plain), str(packed)], JsonLineReader(report)))
    assert len(flows) == 3 and report.lines == 3


@pytest.mark.parametrize(
    ("paths", "message"),
    [
        pytest.param(["missing.jsonl"], "cannot read missing.jsonl: no such file. Check the path", id="missing"),
        pytest.param(["-", "-"], "stdin (-) can be read only once; name it a single time", id="stdin-twice"),
        pytest.param([], "no input given: pass --input-file FILE (or - for stdin)", id="none"),
    ],
)
def test_bad_inputs_fail_before_reading(paths: list[str], message: str) -> None:
    with pytest.raises(InputError) as caught:
        list(read_files(paths, JsonLineReader()))
    assert str(caught.value) == message


def test_demo_capture_reads_cleanly() -> None:
    report = ReadReport()
    flows = list(read_files([str(DEMO)], JsonLineReader(report)))
    assert report.malformed == 0 and report.unknown_fields == []
    assert {f.source.namespace for f in flows} >= {"shop", "data", "monitoring", "batch"}
    assert any(f.l7 and f.l7.kafka for f in flows) and any(f.l7 and f.l7.dns for f in flows)


# ---------------------------------------------------------------------------
# JSON and protobuf give the same Flow

_u32 = st.integers(0, 2**32 - 1)
_port = st.integers(0, 65535)
_text = st.text(max_size=12)
_names = st.lists(st.text(min_size=1, max_size=10), max_size=3)


def _enum_value(enum_type: object) -> st.SearchStrategy[int]:
    return st.sampled_from([v.number for v in enum_type.DESCRIPTOR.values])  # type: ignore[attr-defined]


@st.composite
def proto_flows(draw: st.DrawFn) -> flow_pb2.Flow:  # noqa: PLR0915 - one flat recipe reads best
    m = flow_pb2.Flow()
    if draw(st.booleans()):
        m.time.FromNanoseconds(draw(st.integers(0, 4_000_000_000 * 10**9)))
    m.uuid = draw(_text)
    m.verdict = draw(_enum_value(flow_pb2.Verdict))
    m.drop_reason = draw(st.sampled_from([0, 133, 181, 999]))
    m.drop_reason_desc = draw(_enum_value(flow_pb2.DropReason))
    if draw(st.booleans()):
        m.IP.source, m.IP.destination = draw(_text), draw(_text)
        m.IP.ipVersion = draw(_enum_value(flow_pb2.IPVersion))
    kind = draw(st.sampled_from(["none", "empty", "TCP", "UDP", "SCTP", "ICMPv4", "ICMPv6", "VRRP", "IGMP"]))
    if kind == "empty":
        m.l4.SetInParent()
    elif kind in ("TCP", "UDP", "SCTP"):
        record = getattr(m.l4, kind)
        record.source_port, record.destination_port = draw(_port), draw(_port)
        if kind == "TCP" and draw(st.booleans()):
            record.flags.SetInParent()
            record.flags.SYN, record.flags.ACK, record.flags.NS = draw(st.tuples(*[st.booleans()] * 3))
        record.SetInParent()
    elif kind in ("ICMPv4", "ICMPv6"):
        getattr(m.l4, kind).type = draw(st.integers(0, 255))
        getattr(m.l4, kind).code = draw(st.integers(0, 255))
        getattr(m.l4, kind).SetInParent()
    elif kind == "VRRP":
        m.l4.VRRP.type, m.l4.VRRP.vrid, m.l4.VRRP.priority = draw(st.tuples(_u32, _u32, _u32))
        m.l4.VRRP.SetInParent()
    elif kind == "IGMP":
        m.l4.IGMP.type, m.l4.IGMP.group_address = draw(_u32), draw(_text)
        m.l4.IGMP.SetInParent()
    for endpoint in (m.source, m.destination):
        if draw(st.booleans()):
            endpoint.ID, endpoint.identity = draw(_u32), draw(_u32)
            endpoint.namespace, endpoint.pod_name, endpoint.cluster_name = draw(st.tuples(_text, _text, _text))
            endpoint.labels.extend(draw(_names))
            for _ in range(draw(st.integers(0, 2))):
                endpoint.workloads.add(name=draw(_text), kind=draw(_text))
    m.Type = draw(_enum_value(flow_pb2.FlowType))
    m.node_name = draw(_text)
    m.source_names.extend(draw(_names))
    m.destination_names.extend(draw(_names))
    record_kind = draw(st.sampled_from(["none", "empty", "http", "dns", "kafka"]))
    if record_kind != "none":
        m.l7.type = draw(_enum_value(flow_pb2.L7FlowType))
        m.l7.latency_ns = draw(st.integers(0, 2**64 - 1))
        m.l7.SetInParent()
    if record_kind == "http":
        m.l7.http.code, m.l7.http.method, m.l7.http.url = draw(_u32), draw(_text), draw(_text)
        m.l7.http.headers.add(key=draw(_text), value=draw(_text))
        m.l7.http.SetInParent()
    elif record_kind == "dns":
        m.l7.dns.query, m.l7.dns.ttl, m.l7.dns.rcode = draw(_text), draw(_u32), draw(_u32)
        m.l7.dns.ips.extend(draw(_names))
        m.l7.dns.qtypes.extend(draw(_names))
        m.l7.dns.SetInParent()
    elif record_kind == "kafka":
        m.l7.kafka.api_key, m.l7.kafka.topic = draw(_text), draw(_text)
        m.l7.kafka.api_version = draw(st.integers(-(2**31), 2**31 - 1))
        m.l7.kafka.SetInParent()
    if draw(st.booleans()):
        m.event_type.type, m.event_type.sub_type = draw(st.sampled_from([1, 4, 5, 129])), draw(st.integers(0, 200))
        m.event_type.SetInParent()
    if draw(st.booleans()):
        m.source_service.name, m.source_service.namespace = draw(_text), draw(_text)
        m.source_service.SetInParent()
    m.traffic_direction = draw(_enum_value(flow_pb2.TrafficDirection))
    m.policy_match_type = draw(st.integers(0, 6))
    m.trace_observation_point = draw(_enum_value(flow_pb2.TraceObservationPoint))
    reply = draw(st.sampled_from([None, True, False]))
    if reply is not None:
        m.is_reply.value = reply
        m.is_reply.SetInParent()
    m.reply = bool(reply)
    m.Summary = draw(_text)
    m.interface.name = draw(_text)
    return m


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(proto_flows(), st.booleans())
def test_json_as_hubble_writes_it_and_protobuf_give_the_same_flow(message: flow_pb2.Flow, wrapped: bool) -> None:
    rendered = json_format.MessageToDict(message, preserving_proto_field_name=True)
    line = orjson.dumps({"flow": rendered} if wrapped else rendered)
    flows, report, _ = read([line])
    assert report.malformed == 0 and report.unknown_fields == []
    assert flows == [flow_from_proto(message)]


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(proto_flows())
def test_camel_case_json_gives_the_same_flow(message: flow_pb2.Flow) -> None:
    line = orjson.dumps({"flow": json_format.MessageToDict(message)})
    flows, report, _ = read([line])
    assert report.malformed == 0
    assert flows == [flow_from_proto(message)]
