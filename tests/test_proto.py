"""Our generated protobuf messages against real Hubble data and the flow model's enums."""

from __future__ import annotations

import enum

import pytest
from google.protobuf import json_format

from flowgen._pb.flow import flow_pb2
from flowgen._pb.observer import observer_pb2, observer_pb2_grpc
from flowgen.ingest import flow
from tests.conftest import DEMO, sample_files


def test_every_sample_line_parses_with_our_messages_and_no_unknown_field() -> None:
    lines = 0
    for path in sample_files():
        for line in path.read_text().splitlines():
            if line.strip():
                # ExportEvent is GetFlowsResponse plus agent/debug events; strict: no unknown fields.
                json_format.Parse(line, observer_pb2.ExportEvent())
                lines += 1
    assert lines >= 30


def test_demo_capture_is_valid_get_flows_responses() -> None:
    for line in DEMO.read_text().splitlines():
        json_format.Parse(line, observer_pb2.GetFlowsResponse())


def test_service_paths_match_hubble() -> None:
    service = observer_pb2.DESCRIPTOR.services_by_name["Observer"]
    assert service.full_name == "observer.Observer"
    assert set(service.methods_by_name) == {"GetFlows", "GetNodes", "ServerStatus"}
    assert hasattr(observer_pb2_grpc, "ObserverStub")


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        pytest.param(flow.Verdict, flow_pb2.Verdict, id="Verdict"),
        pytest.param(flow.FlowType, flow_pb2.FlowType, id="FlowType"),
        pytest.param(flow.TrafficDirection, flow_pb2.TrafficDirection, id="TrafficDirection"),
        pytest.param(flow.ObservationPoint, flow_pb2.TraceObservationPoint, id="TraceObservationPoint"),
        pytest.param(flow.L7Type, flow_pb2.L7FlowType, id="L7FlowType"),
        pytest.param(flow.IPVersion, flow_pb2.IPVersion, id="IPVersion"),
        pytest.param(flow.DropReason, flow_pb2.DropReason, id="DropReason"),
    ],
)
def test_model_enums_carry_exactly_the_proto_names(ours: type[enum.StrEnum], theirs: object) -> None:
    assert [m.value for m in ours] == [v.name for v in theirs.DESCRIPTOR.values]  # type: ignore[attr-defined]


def test_field_numbers_match_the_reference_table() -> None:
    fields = {f.name: f.number for f in flow_pb2.Flow.DESCRIPTOR.fields}
    assert fields["is_reply"] == 26
    assert fields["uuid"] == 34
    assert fields["Summary"] == 100000
    assert fields["egress_allowed_by"] == 21001
    response = {f.name: f.number for f in observer_pb2.GetFlowsResponse.DESCRIPTOR.fields}
    assert response == {"flow": 1, "node_status": 2, "lost_events": 3, "node_name": 1000, "time": 1001}
