"""A Hubble-Relay-compatible gRPC server for tests and benchmarks, served on 127.0.0.1.

It is built from flowgen's own generated stubs and plays a scripted history of
GetFlowsResponse events. What it implements of the real server (ref
hubble-api.md §5): `since` / `until` on flow times, whitelist / blacklist pod
filters (`source_pod` / `destination_pod` with `ns/prefix` values), `follow`
(after the history, wait for appended events until the client goes away or the
server stops), `field_mask`, and ServerStatus with a version string. Unlike
Hubble, it always sends its whole history (`number` is ignored), so a follow
request without `since` gets the history, then appended events. It records every
GetFlowsRequest it receives, can be stopped abruptly mid-stream and started
again on the same port (a relay restart), and can serve plaintext, TLS or
mutual TLS with certificates made at test time (`make_pki`).

This is test code: it favours being easy to read and script over speed.
"""

from __future__ import annotations

import ipaddress
import threading
import uuid as uuid_lib
from collections.abc import Iterable, Iterator
from concurrent import futures
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from google.protobuf import wrappers_pb2

from flowgen._pb.flow import flow_pb2
from flowgen._pb.observer import observer_pb2, observer_pb2_grpc
from flowgen._pb.relay import relay_pb2

SERVER_NAME = "hubble.hubble-relay.cilium.io"
VERSION = "hubble-relay v1.19.4+flowgen-fake"
START = datetime(2026, 11, 20, 9, 0, 0, tzinfo=UTC)

# ---------------------------------------------------------------------------
# Realistic messages


def _labels(namespace: str, app: str) -> list[str]:
    return sorted(
        [
            f"k8s:app.kubernetes.io/name={app}",
            f"k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name={namespace}",
            "k8s:io.cilium.k8s.policy.cluster=test",
            f"k8s:io.cilium.k8s.policy.serviceaccount={app}",
            f"k8s:io.kubernetes.pod.namespace={namespace}",
        ]
    )


def make_flow(
    index: int,
    *,
    time: datetime,
    source_namespace: str = "shop",
    destination_namespace: str = "shop",
    node: str = "test/node-a",
    uuid: str | None = None,
) -> flow_pb2.Flow:
    """An L3/L4 trace flow like Hubble shows for pod-to-pod TCP: FORWARDED, not a reply, with labels."""
    src_app, dst_app = f"frontend-{index % 7}", f"backend-{index % 5}"
    flow = flow_pb2.Flow(
        uuid=str(uuid_lib.UUID(int=index + 1)) if uuid is None else uuid,
        verdict=flow_pb2.FORWARDED,
        IP=flow_pb2.IP(
            source=f"10.0.{index % 7}.{10 + index % 200}",
            destination=f"10.1.{index % 5}.{20 + index % 200}",
            ipVersion=flow_pb2.IPv4,
        ),
        l4=flow_pb2.Layer4(
            TCP=flow_pb2.TCP(
                source_port=32768 + index % 28000,
                destination_port=8080,
                flags=flow_pb2.TCPFlags(SYN=True),
            )
        ),
        source=flow_pb2.Endpoint(
            ID=1000 + index % 7,
            identity=30000 + index % 7,
            namespace=source_namespace,
            labels=_labels(source_namespace, src_app),
            pod_name=f"{src_app}-6d9f7c8b5-x{index % 7}q2z",
            workloads=[flow_pb2.Workload(name=src_app, kind="Deployment")],
        ),
        destination=flow_pb2.Endpoint(
            identity=31000 + index % 5,
            namespace=destination_namespace,
            labels=_labels(destination_namespace, dst_app),
            pod_name=f"{dst_app}-7b8c9d6f4-k{index % 5}w8r",
        ),
        Type=flow_pb2.L3_L4,
        node_name=node,
        event_type=flow_pb2.CiliumEventType(type=4, sub_type=3),
        traffic_direction=flow_pb2.EGRESS,
        trace_observation_point=flow_pb2.TO_STACK,
        is_reply=wrappers_pb2.BoolValue(value=False),
        Summary="TCP Flags: SYN",
    )
    flow.time.FromDatetime(time)
    return flow


def flow_event(flow: flow_pb2.Flow) -> observer_pb2.GetFlowsResponse:
    """A flow wrapped the way the relay sends it (node_name and time copied out)."""
    event = observer_pb2.GetFlowsResponse(flow=flow, node_name=flow.node_name)
    event.time.CopyFrom(flow.time)
    return event


def flow_events(
    count: int,
    *,
    start: datetime = START,
    step: timedelta = timedelta(milliseconds=10),
    namespaces: tuple[str, ...] = ("shop",),
    first_index: int = 0,
) -> list[observer_pb2.GetFlowsResponse]:
    """`count` flows `step` apart; flow i goes from namespaces[i % n] to namespaces[(i + 1) % n]."""
    n = len(namespaces)
    return [
        flow_event(
            make_flow(
                i,
                time=start + (i - first_index) * step,
                source_namespace=namespaces[i % n],
                destination_namespace=namespaces[(i + 1) % n],
                node=f"test/node-{'ab'[i % 2]}",
            )
        )
        for i in range(first_index, first_index + count)
    ]


def node_status_event(state: int, nodes: Iterable[str], message: str = "") -> observer_pb2.GetFlowsResponse:
    """A relay node_status event; `state` is a relay_pb2.NodeState value."""
    event = observer_pb2.GetFlowsResponse(
        node_status=relay_pb2.NodeStatusEvent(state_change=state, node_names=list(nodes), message=message)
    )
    event.time.GetCurrentTime()
    return event


def lost_event(source: int, count: int, node: str = "test/node-a") -> observer_pb2.GetFlowsResponse:
    """A lost_events notice; `source` is a flow_pb2.LostEventSource value."""
    event = observer_pb2.GetFlowsResponse(
        lost_events=flow_pb2.LostEvent(source=source, num_events_lost=count),
        node_name=node,
    )
    event.time.GetCurrentTime()
    return event


# ---------------------------------------------------------------------------
# Filters (the subset flowgen sends)


def _pod_matches(value: str, endpoint: flow_pb2.Endpoint) -> bool:
    # "ns/prefix": no "/" means namespace default; empty namespace means any (ref §5.2).
    namespace, _, prefix = value.rpartition("/") if "/" in value else ("default", "", value)
    if not endpoint.namespace and not endpoint.pod_name:
        return False
    if namespace and endpoint.namespace != namespace:
        return False
    return endpoint.pod_name.startswith(prefix)


_SUPPORTED_FILTER_FIELDS = {"source_pod", "destination_pod"}


def _filter_matches(flt: flow_pb2.FlowFilter, flow: flow_pb2.Flow) -> bool:
    if flt.source_pod and not any(_pod_matches(v, flow.source) for v in flt.source_pod):
        return False
    return not (flt.destination_pod and not any(_pod_matches(v, flow.destination) for v in flt.destination_pod))


def _unsupported(request: observer_pb2.GetFlowsRequest) -> str | None:
    for flt in [*request.whitelist, *request.blacklist]:
        for descriptor, _value in flt.ListFields():
            if descriptor.name not in _SUPPORTED_FILTER_FIELDS:
                return f"the fake relay does not implement the {descriptor.name} filter"
    return None


def masked(
    request: observer_pb2.GetFlowsRequest, event: observer_pb2.GetFlowsResponse
) -> observer_pb2.GetFlowsResponse:
    """The event with its flow cut down to the request's field mask (as Cilium 1.16+ does)."""
    if not request.field_mask.paths or not event.HasField("flow"):
        return event
    flow = flow_pb2.Flow()
    request.field_mask.MergeMessage(event.flow, flow)
    out = observer_pb2.GetFlowsResponse(flow=flow, node_name=event.node_name)
    out.time.CopyFrom(event.time)
    return out


def passes(request: observer_pb2.GetFlowsRequest, event: observer_pb2.GetFlowsResponse) -> bool:
    """Whether the server sends `event` for `request` (ignoring until). Only flows are filtered."""
    if event.WhichOneof("response_types") != "flow":
        return True
    flow = event.flow
    if request.HasField("since") and flow.time.ToNanoseconds() < request.since.ToNanoseconds():
        return False
    if request.whitelist and not any(_filter_matches(f, flow) for f in request.whitelist):
        return False
    return not any(_filter_matches(f, flow) for f in request.blacklist)


# ---------------------------------------------------------------------------
# The server


class _Observer(observer_pb2_grpc.ObserverServicer):
    def __init__(self, relay: FakeRelay) -> None:
        self.relay = relay

    def GetFlows(  # noqa: N802 - gRPC method name
        self, request: observer_pb2.GetFlowsRequest, context: grpc.ServicerContext
    ) -> Iterator[observer_pb2.GetFlowsResponse]:
        relay = self.relay
        with relay._cond:
            relay.requests.append(request)
        problem = _unsupported(request)
        if problem:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, problem)
        if request.first and request.follow:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "first cannot be combined with follow")
        context.add_callback(relay._wake)
        until = request.until.ToNanoseconds() if request.HasField("until") else None
        generation = relay._generation
        index = 0
        while True:
            with relay._cond:
                while (
                    index >= len(relay._events)
                    and request.follow
                    and context.is_active()
                    and generation == relay._generation
                ):
                    relay._cond.wait(0.2)
                if not context.is_active() or generation != relay._generation:
                    return
                batch = relay._events[index:]
            if not batch:
                return
            index += len(batch)
            for event in batch:
                if until is not None and event.HasField("flow") and event.flow.time.ToNanoseconds() > until:
                    return
                if passes(request, event):
                    yield masked(request, event) if relay.apply_field_mask else event
                    with relay._cond:
                        relay.sent += 1
                        relay._cond.notify_all()

    def ServerStatus(  # noqa: N802 - gRPC method name
        self, request: observer_pb2.ServerStatusRequest, context: grpc.ServicerContext
    ) -> observer_pb2.ServerStatusResponse:
        flows = sum(1 for e in self.relay._events if e.HasField("flow"))
        return observer_pb2.ServerStatusResponse(
            num_flows=flows, max_flows=flows, seen_flows=flows, version=self.relay.version
        )


@dataclass(frozen=True)
class ServerTLS:
    """PEM files for serving TLS; with `client_ca`, clients must present a certificate it signed."""

    cert: Path
    key: Path
    client_ca: Path | None = None


class FakeRelay:
    """A scripted Hubble Relay on 127.0.0.1 (port 0 picks a free port, kept across restarts).

    Use as a context manager, or call start() / stop().
    """

    def __init__(
        self,
        events: Iterable[observer_pb2.GetFlowsResponse] = (),
        *,
        tls: ServerTLS | None = None,
        port: int = 0,
        version: str = VERSION,
        max_workers: int = 8,
        apply_field_mask: bool = True,
    ) -> None:
        self._events = list(events)
        self.tls = tls
        self.port = port
        self.version = version
        self.max_workers = max_workers
        self.apply_field_mask = apply_field_mask
        self.requests: list[observer_pb2.GetFlowsRequest] = []
        # Responses handed to gRPC so far, over every stream.
        self.sent = 0
        self._cond = threading.Condition()
        # Bumped at each stop: streams of an earlier generation end.
        self._generation = 0
        self._server: grpc.Server | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> FakeRelay:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=self.max_workers))
        observer_pb2_grpc.add_ObserverServicer_to_server(_Observer(self), server)
        if self.tls is None:
            port = server.add_insecure_port(f"127.0.0.1:{self.port}")
        else:
            credentials = grpc.ssl_server_credentials(
                [(self.tls.key.read_bytes(), self.tls.cert.read_bytes())],
                root_certificates=self.tls.client_ca.read_bytes() if self.tls.client_ca else None,
                require_client_auth=self.tls.client_ca is not None,
            )
            port = server.add_secure_port(f"127.0.0.1:{self.port}", credentials)
        if not port:
            raise RuntimeError(f"cannot listen on 127.0.0.1:{self.port}")
        self.port = port
        server.start()
        self._server = server
        return self

    def stop(self) -> None:
        """Stop at once, cutting every open stream (like a relay crash). start() serves again on the same port."""
        with self._cond:
            self._generation += 1
            self._cond.notify_all()
        if self._server is not None:
            self._server.stop(grace=None).wait()
            self._server = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def append(self, *events: observer_pb2.GetFlowsResponse) -> None:
        """Add events to the history; follow streams send them at once."""
        with self._cond:
            self._events.extend(events)
            self._cond.notify_all()

    def wait_sent(self, count: int, timeout: float = 30.0) -> None:
        """Block until `count` responses were sent (a condition, not a sleep); fail after `timeout`."""
        with self._cond:
            if not self._cond.wait_for(lambda: self.sent >= count, timeout):
                raise AssertionError(f"the relay sent {self.sent} of {count} responses within {timeout:g}s")

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def __enter__(self) -> FakeRelay:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


# ---------------------------------------------------------------------------
# Certificates


@dataclass(frozen=True)
class Pki:
    """PEM files: a CA, a server and a client certificate it signed, and an unrelated CA."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path

    def server_tls(self, *, mutual: bool = False) -> ServerTLS:
        return ServerTLS(self.server_cert, self.server_key, self.ca if mutual else None)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


def _ca(common_name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _leaf(
    common_name: str,
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    usage: x509.ObjectIdentifier,
    names: list[x509.GeneralName],
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca[0].subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca[1].public_key()),
            critical=False,
        )
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca[1], hashes.SHA256()), key


def make_pki(directory: Path) -> Pki:
    """Make the certificates in `directory`. The server certificate names the relay's usual
    TLS server name, localhost and 127.0.0.1."""
    ca = _ca("flowgen test CA")
    other = _ca("some other CA")
    server = _leaf(
        "*.hubble-relay.cilium.io",
        ca,
        ExtendedKeyUsageOID.SERVER_AUTH,
        [
            x509.DNSName(SERVER_NAME),
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        ],
    )
    client = _leaf("flowgen", ca, ExtendedKeyUsageOID.CLIENT_AUTH, [])
    pki = Pki(
        ca=directory / "ca.crt",
        server_cert=directory / "server.crt",
        server_key=directory / "server.key",
        client_cert=directory / "client.crt",
        client_key=directory / "client.key",
        other_ca=directory / "other-ca.crt",
    )
    pki.ca.write_bytes(ca[0].public_bytes(serialization.Encoding.PEM))
    pki.other_ca.write_bytes(other[0].public_bytes(serialization.Encoding.PEM))
    pki.server_cert.write_bytes(server[0].public_bytes(serialization.Encoding.PEM))
    _write_key(pki.server_key, server[1])
    pki.client_cert.write_bytes(client[0].public_bytes(serialization.Encoding.PEM))
    _write_key(pki.client_key, client[1])
    return pki
