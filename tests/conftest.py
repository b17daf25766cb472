"""Shared test helpers: paths to the bundled fixtures and to ../shared references."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from flowgen.ingest.flow import (
    IP,
    TCP,
    CiliumEventType,
    DropReason,
    Endpoint,
    EventType,
    Flow,
    FlowType,
    IPVersion,
    Layer4,
    Layer7,
    ObservationPoint,
    Ports,
    TCPFlags,
    Verdict,
)

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "fixtures" / "flows" / "demo.jsonl"
SAMPLES = ROOT.parent / "shared" / "ref" / "hubble-samples"


@pytest.fixture(autouse=True)
def _private_store(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test writes into the user's real store: FLOWGEN_STORE points at a temporary one."""
    monkeypatch.setenv("FLOWGEN_STORE", str(tmp_path_factory.mktemp("store")))


def sample_files() -> list[Path]:
    """Every real Hubble capture in ../shared/ref/hubble-samples (skips when absent)."""
    if not SAMPLES.is_dir():
        pytest.skip(f"reference samples not found at {SAMPLES} (../shared is not checked out beside this repo)")
    return sorted(p for p in SAMPLES.rglob("*") if p.suffix in (".json", ".jsonl"))


# --- Builders for flow values (table tests) --------------------------------

_T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def pod(namespace: str, app: str, *extra: str, cluster: str = "prod", identity: int = 30000) -> Endpoint:
    """A pod endpoint with Hubble-style identity labels."""
    labels = [
        f"k8s:app.kubernetes.io/name={app}",
        f"k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name={namespace}",
        f"k8s:io.cilium.k8s.policy.cluster={cluster}",
        f"k8s:io.cilium.k8s.policy.serviceaccount={app}",
        f"k8s:io.kubernetes.pod.namespace={namespace}",
        *extra,
    ]
    return Endpoint(
        identity=identity, namespace=namespace, labels=tuple(sorted(labels)), pod_name=f"{app}-7d9c6b5f4-x2k8p"
    )


def entity(name: str, identity: int = 0) -> Endpoint:
    return Endpoint(identity=identity, labels=(f"reserved:{name}",))


def tcp_flow(
    source: Endpoint,
    destination: Endpoint,
    port: int,
    *,
    at: float = 0.0,
    src_ip: str = "10.0.0.1",
    dst_ip: str = "10.0.0.2",
    src_port: int = 40000,
    verdict: Verdict = Verdict.FORWARDED,
    is_reply: bool | None = False,
    point: ObservationPoint = ObservationPoint.FROM_ENDPOINT,
    event: int = EventType.TRACE,
    node: str = "prod/node-a",
    flags: TCPFlags | None = None,
    drop_reason: DropReason = DropReason.DROP_REASON_UNKNOWN,
    names: tuple[str, ...] = (),
    l7: Layer7 | None = None,
    udp: bool = False,
) -> Flow:
    ports = Ports(source_port=src_port, destination_port=port)
    l4 = Layer4(udp=ports) if udp else Layer4(tcp=TCP(source_port=src_port, destination_port=port, flags=flags))
    return Flow(
        time=_T0 + timedelta(seconds=at),
        uuid=f"uuid-{source.pod_name}-{port}-{at}-{node}-{point}",
        verdict=verdict,
        drop_reason=drop_reason,
        ip=IP(source=src_ip, destination=dst_ip, version=IPVersion.IPv4),
        l4=l4,
        source=source,
        destination=destination,
        flow_type=FlowType.L7 if l7 else FlowType.L3_L4,
        node_name=node,
        destination_names=names,
        l7=l7,
        event_type=CiliumEventType(type=EventType.L7 if l7 else event),
        observation_point=ObservationPoint.UNKNOWN_POINT if l7 or event != EventType.TRACE else point,
        is_reply=is_reply,
    )
