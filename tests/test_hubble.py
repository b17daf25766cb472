"""The live Hubble Relay stream, against a real gRPC server on 127.0.0.1 (tests/relay_server.py)."""

from __future__ import annotations

import io
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent import futures
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import orjson
import pytest
from google.protobuf import json_format

from flowgen._pb.flow import flow_pb2
from flowgen._pb.observer import observer_pb2
from flowgen._pb.relay import relay_pb2
from flowgen.errors import RelayError
from flowgen.graph.builder import GraphBuilder
from flowgen.graph.session import Observation
from flowgen.ingest.dialing import Connection, server_status
from flowgen.ingest.events import Connected, Event, Idle, Lost, NodeStatus, Reconnecting
from flowgen.ingest.flow import Flow
from flowgen.ingest.hubble import RelayStream, _RecentFlows
from flowgen.ingest.proto import flow_from_proto
from flowgen.ingest.query import FIELD_MASK, Query, flows_request
from tests.conftest import DEMO
from tests.relay_server import (
    SERVER_NAME,
    START,
    VERSION,
    FakeRelay,
    Pki,
    flow_events,
    lost_event,
    make_pki,
    masked,
    node_status_event,
)

# Small waits keep the file fast; every test uses only 127.0.0.1.
FAST = {"tick": 0.05, "backoff_initial": 0.02, "backoff_max": 0.1}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def relay() -> Iterator[FakeRelay]:
    with FakeRelay(flow_events(20)) as server:
        yield server


def our_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("flowgen-hubble")]


# How long a stream that should end may take before a test calls it stuck (generous: CI machines vary).
PATIENCE = 30.0


def drain(stream: RelayStream) -> list[Event]:
    """Every event of the stream, read in a thread; fails when the stream has not ended within PATIENCE."""
    events: list[Event] = []
    failures: list[BaseException] = []

    def run() -> None:
        try:
            events.extend(stream.events())
        except BaseException as failure:  # handed to the test
            failures.append(failure)

    reader = threading.Thread(target=run)
    reader.start()
    reader.join(PATIENCE)
    if reader.is_alive():
        stream.stop()
        reader.join()
        raise AssertionError(f"the stream did not end within {PATIENCE:g}s")
    if failures:
        raise failures[0]
    return events


def received(events: list[Event]) -> list[Flow]:
    return [e for e in events if isinstance(e, Flow)]


# ---------------------------------------------------------------------------
# The request


def test_field_mask_paths_are_flow_fields() -> None:
    fields = flow_pb2.Flow.DESCRIPTOR.fields_by_name
    assert all(path in fields for path in FIELD_MASK)
    assert len(set(FIELD_MASK)) == len(FIELD_MASK)


def test_field_mask_keeps_everything_flowgen_reads() -> None:
    # The demo capture has L7 (HTTP, DNS), drops, services and DNS names: masked flows convert the same.
    request = flows_request(Query())
    events = [json_format.Parse(line, observer_pb2.GetFlowsResponse()) for line in DEMO.read_text().splitlines()]
    flows = [e for e in events if e.HasField("flow")]
    assert len(flows) > 400
    for event in flows:
        trimmed = masked(request, event)
        assert trimmed.flow.ByteSize() < event.flow.ByteSize()
        assert flow_from_proto(trimmed.flow) == flow_from_proto(event.flow)


@pytest.mark.parametrize(
    ("query", "since", "expected"),
    [
        pytest.param(
            Query(),
            None,
            {"follow": True, "whitelist": [], "since": None, "until": None},
            id="follow-everything",
        ),
        pytest.param(
            Query(namespaces=("shop", "payments")),
            None,
            {
                "follow": True,
                "whitelist": [{"source_pod": ["shop/", "payments/"]}, {"destination_pod": ["shop/", "payments/"]}],
                "since": None,
                "until": None,
            },
            id="namespaces-become-pod-prefix-filters",
        ),
        pytest.param(
            Query(since=START, until=START + timedelta(hours=1)),
            None,
            {"follow": True, "whitelist": [], "since": START, "until": None},
            id="until-not-sent-with-follow",
        ),
        pytest.param(
            Query(since=START, until=START + timedelta(hours=1), follow=False),
            None,
            {"follow": False, "whitelist": [], "since": START, "until": START + timedelta(hours=1)},
            id="until-sent-without-follow",
        ),
        pytest.param(
            Query(since=START),
            START + timedelta(minutes=5),
            {"follow": True, "whitelist": [], "since": START + timedelta(minutes=5), "until": None},
            id="resume-overrides-since",
        ),
        pytest.param(
            Query(since=datetime(2026, 11, 20, 9, 0)),
            None,
            {"follow": True, "whitelist": [], "since": START, "until": None},
            id="naive-time-is-utc",
        ),
    ],
)
def test_flows_request(query: Query, since: datetime | None, expected: dict[str, object]) -> None:
    request = flows_request(query, since=since)
    assert request.follow is expected["follow"]
    whitelist = [{f.name: list(v) for f, v in flt.ListFields()} for flt in request.whitelist]
    assert whitelist == expected["whitelist"]
    assert not request.blacklist
    assert (request.since.ToDatetime(tzinfo=UTC) if request.HasField("since") else None) == expected["since"]
    assert (request.until.ToDatetime(tzinfo=UTC) if request.HasField("until") else None) == expected["until"]
    assert list(request.field_mask.paths) == list(FIELD_MASK)
    assert request.number == 0


def test_empty_fields_ask_for_whole_flows() -> None:
    assert not flows_request(Query(fields=())).HasField("field_mask")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        pytest.param(
            lambda: Query(namespaces=("shop/frontend",)),
            "invalid namespace 'shop/frontend': give a Kubernetes namespace name such as kube-system",
            id="namespace-with-slash",
        ),
        pytest.param(
            lambda: Query(since=START, until=START),
            "--since (2026-11-20T09:00:00+00:00) must be before --until (2026-11-20T09:00:00+00:00)",
            id="empty-window",
        ),
        pytest.param(
            lambda: Query(fields=("source.id",)),
            "'source.id' is not a Flow field (field mask paths are proto field names such as source.labels)",
            id="bad-field-path",
        ),
        pytest.param(
            lambda: Connection(client_cert_file="client.crt"),
            "mutual TLS needs a client certificate and its key together: add --tls-client-key-file",
            id="cert-without-key",
        ),
        pytest.param(
            lambda: Connection(ca_cert_files=("ca.crt",)),
            "--tls-ca-cert-files is set but TLS is off: add --tls, or write the server as tls://localhost:4245",
            id="ca-without-tls",
        ),
        pytest.param(
            lambda: Connection(server="tls://"),
            "no server address given: pass --server host:port (e.g. localhost:4245)",
            id="no-address",
        ),
    ],
)
def test_bad_settings_are_refused_with_the_fix(make: object, message: str) -> None:
    with pytest.raises(RelayError) as caught:
        make()
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("connection", "uses_tls", "target"),
    [
        pytest.param(Connection(), False, "localhost:4245", id="default"),
        pytest.param(Connection(server="tls://relay:443"), True, "relay:443", id="tls-prefix"),
        pytest.param(Connection(tls=True), True, "localhost:4245", id="tls-flag"),
        pytest.param(
            Connection(client_cert_file="c.crt", client_key_file="c.key"), True, "localhost:4245", id="client-cert"
        ),
    ],
)
def test_connection_target_and_tls(connection: Connection, uses_tls: bool, target: str) -> None:
    assert (connection.uses_tls, connection.target) == (uses_tls, target)
    assert connection.warning is None


def test_insecure_connection_carries_a_warning() -> None:
    warning = Connection(tls=True, allow_insecure=True).warning
    assert warning is not None and "verification is OFF" in warning


# ---------------------------------------------------------------------------
# Streaming


def test_plaintext_stream_yields_converted_flows_and_status() -> None:
    history = [
        node_status_event(relay_pb2.NODE_CONNECTED, ["test/node-a", "test/node-b"]),
        *flow_events(5),
        lost_event(flow_pb2.HUBBLE_RING_BUFFER, 1),
    ]
    with FakeRelay(history) as relay:
        saved = io.BytesIO()
        stream = RelayStream(Connection(relay.address), Query(follow=False), save=saved, **FAST)
        events = list(stream.events())
    assert events[0] == Connected(relay.address, VERSION, None)
    assert events[1] == NodeStatus("NODE_CONNECTED", ("test/node-a", "test/node-b"), "")
    flows = received(events)
    assert flows == [flow_from_proto(h.flow) for h in history[1:6]]
    # The field mask drops only what flowgen does not read; the saved lines are what was received.
    lines = [orjson.loads(line) for line in saved.getvalue().splitlines()]
    assert [line["flow"]["uuid"] for line in lines] == [h.flow.uuid for h in history[1:6]]
    assert all("Summary" not in line["flow"] for line in lines)
    assert stream.stats.saved == 5
    assert events[-1] == Lost("HUBBLE_RING_BUFFER", 1)
    assert stream.stats.received == 5
    assert stream.stats.duplicates == 0
    assert not our_threads()


def test_namespaces_since_and_field_mask_go_on_the_wire() -> None:
    history = flow_events(12, namespaces=("shop", "payments", "kube-system"))
    with FakeRelay(history) as relay:
        since = START + timedelta(milliseconds=30)
        query = Query(namespaces=("shop",), since=since, follow=False)
        flows = received(list(RelayStream(Connection(relay.address), query, **FAST).events()))
    (request,) = relay.requests
    assert request == flows_request(query)
    assert request.since.ToDatetime(tzinfo=UTC) == since
    assert list(request.field_mask.paths) == list(FIELD_MASK)
    # Flows 0-2 are before since; of the rest, those from or to shop pass the filter.
    assert [e.uuid for e in flows] == [
        h.flow.uuid for h in history[3:] if "shop" in (h.flow.source.namespace, h.flow.destination.namespace)
    ]
    assert len(flows) == 6
    assert all(e.time is not None and e.time >= since for e in flows)


def test_lost_events_are_counted_by_source() -> None:
    history = [
        lost_event(flow_pb2.PERF_EVENT_RING_BUFFER, 7),
        lost_event(flow_pb2.OBSERVER_EVENTS_QUEUE, 3),
        lost_event(flow_pb2.PERF_EVENT_RING_BUFFER, 5),
    ]
    with FakeRelay(history) as relay:
        stream = RelayStream(Connection(relay.address), Query(follow=False), **FAST)
        events = list(stream.events())
    assert [e for e in events if isinstance(e, Lost)] == [
        Lost("PERF_EVENT_RING_BUFFER", 7),
        Lost("OBSERVER_EVENTS_QUEUE", 3),
        Lost("PERF_EVENT_RING_BUFFER", 5),
    ]
    lost: Counter[str] = Counter()
    for event in events:
        if isinstance(event, Lost):
            lost[event.source] += event.count
    assert lost == {"PERF_EVENT_RING_BUFFER": 12, "OBSERVER_EVENTS_QUEUE": 3}


def test_node_status_is_tracked() -> None:
    history = [
        node_status_event(relay_pb2.NODE_CONNECTED, ["n1", "n2", "n3"]),
        node_status_event(relay_pb2.NODE_UNAVAILABLE, ["n4"]),
        node_status_event(relay_pb2.NODE_ERROR, ["n2"], "connection reset"),
        node_status_event(relay_pb2.NODE_GONE, ["n3"]),
        node_status_event(relay_pb2.NODE_CONNECTED, ["n4"]),
    ]
    with FakeRelay(history) as relay:
        stream = RelayStream(Connection(relay.address), Query(follow=False), **FAST)
        session = Observation(GraphBuilder())
        seen: list[Event | None] = []
        session.read(stream, seen.append)
    assert NodeStatus("NODE_ERROR", ("n2",), "connection reset") in seen
    assert session.counters.nodes_connected == {"n1", "n4"}
    assert session.counters.nodes_unavailable == {"n2", "n3"}


# ---------------------------------------------------------------------------
# TLS


@pytest.mark.parametrize(
    ("mutual", "settings"),
    [
        pytest.param(False, {"tls": True, "ca": True, "server_name": SERVER_NAME}, id="tls-ca-and-server-name"),
        pytest.param(False, {"prefix": True, "ca": True, "server_name": SERVER_NAME}, id="tls-prefix"),
        pytest.param(False, {"tls": True, "ca": True}, id="tls-ip-in-certificate"),
        pytest.param(True, {"ca": True, "client": True, "server_name": SERVER_NAME}, id="mutual-tls"),
        pytest.param(False, {"tls": True, "insecure": True}, id="allow-insecure"),
        pytest.param(True, {"insecure": True, "client": True}, id="allow-insecure-mutual"),
    ],
)
def test_tls_streams(pki: Pki, mutual: bool, settings: dict[str, object]) -> None:
    with FakeRelay(flow_events(3), tls=pki.server_tls(mutual=mutual)) as relay:
        connection = Connection(
            server=("tls://" if settings.get("prefix") else "") + relay.address,
            tls=bool(settings.get("tls")),
            ca_cert_files=(str(pki.ca),) if settings.get("ca") else (),
            client_cert_file=str(pki.client_cert) if settings.get("client") else None,
            client_key_file=str(pki.client_key) if settings.get("client") else None,
            server_name=settings.get("server_name"),
            allow_insecure=bool(settings.get("insecure")),
            timeout=2,
        )
        events = list(RelayStream(connection, Query(follow=False), **FAST).events())
    assert events[0] == Connected(relay.address, VERSION, None)
    assert len(received(events)) == 3


@pytest.mark.parametrize(
    ("mutual", "settings", "expected"),
    [
        pytest.param(
            False,
            {"tls": True, "ca": "other", "server_name": SERVER_NAME},
            [
                "TLS handshake with Hubble Relay at",
                "CERTIFICATE_VERIFY_FAILED",
                "--tls-ca-cert-files",
                "--tls-server-name",
            ],
            id="wrong-ca",
        ),
        pytest.param(
            False,
            {"tls": True, "ca": "ours", "server_name": "relay.example.org"},
            ["TLS handshake with Hubble Relay at", "set --tls-server-name to a name in it"],
            id="wrong-server-name",
        ),
        pytest.param(
            True,
            {"tls": True, "ca": "ours", "server_name": SERVER_NAME},
            ["cannot connect to Hubble Relay at", "mutual TLS", "--tls-client-cert-file and --tls-client-key-file"],
            id="mutual-tls-without-client-cert",
        ),
        pytest.param(
            False,
            {},
            ["cannot connect to Hubble Relay at", "If the relay serves TLS, add --tls"],
            id="plaintext-to-tls-server",
        ),
    ],
)
def test_tls_failures_say_what_to_fix(pki: Pki, mutual: bool, settings: dict[str, object], expected: list[str]) -> None:
    ca = {"ours": (str(pki.ca),), "other": (str(pki.other_ca),)}.get(str(settings.get("ca")), ())
    with FakeRelay(tls=pki.server_tls(mutual=mutual)) as relay:
        connection = Connection(
            server=relay.address,
            tls=bool(settings.get("tls")),
            ca_cert_files=ca,
            server_name=settings.get("server_name"),
            timeout=0.5,
        )
        with pytest.raises(RelayError) as caught:
            list(RelayStream(connection, Query(), **FAST).events())
    for part in expected:
        assert part in str(caught.value)
    assert not our_threads()


def test_tls_to_a_plaintext_server_says_drop_tls(pki: Pki, relay: FakeRelay) -> None:
    connection = Connection(relay.address, tls=True, ca_cert_files=(str(pki.ca),), timeout=0.5)
    with pytest.raises(RelayError, match=r"does not seem to speak TLS: drop --tls \(and any tls:// prefix\)"):
        list(RelayStream(connection, Query(), **FAST).events())


def test_missing_certificate_file_is_named(tmp_path: Path, relay: FakeRelay) -> None:
    missing = tmp_path / "nope.crt"
    connection = Connection(relay.address, tls=True, ca_cert_files=(str(missing),))
    with pytest.raises(RelayError) as caught:
        list(RelayStream(connection, Query(), **FAST).events())
    assert str(caught.value) == f"cannot read the CA certificate {missing}: no such file. Check --tls-ca-cert-files"


def test_a_refused_connection_fails_at_once() -> None:
    with FakeRelay() as relay:
        address = relay.address
    # Nothing listens there now. A connection timeout longer than the test's patience: only
    # failing fast on the refused connection ends the stream in time.
    stream = RelayStream(Connection(address, timeout=2 * PATIENCE), Query(), **FAST)
    with pytest.raises(RelayError) as caught:
        drain(stream)
    message = str(caught.value)
    assert message.startswith(f"cannot connect to Hubble Relay at {address}: ")
    assert "Connection refused" in message
    assert "Try `cilium hubble port-forward` and --server localhost:4245, or check --tls / certificates" in message


def test_a_server_without_the_observer_service_is_named() -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        stream = RelayStream(Connection(f"127.0.0.1:{port}"), Query(follow=False), **FAST)
        events = stream.events()
        assert next(events) == Connected(f"127.0.0.1:{port}", "", None)
        with pytest.raises(RelayError) as caught:
            next(events)
    finally:
        server.stop(None)
    assert str(caught.value).startswith(
        f"Hubble Relay at 127.0.0.1:{port} refused observer.Observer/GetFlows: UNIMPLEMENTED"
    )
    assert "Is 127.0.0.1:" in str(caught.value)


def test_server_status(relay: FakeRelay) -> None:
    status = server_status(Connection(relay.address))
    assert (status.version, status.num_flows, status.connected_nodes) == (VERSION, 20, None)


# ---------------------------------------------------------------------------
# Ending a stream


def test_deadline_ends_a_follow_stream(relay: FakeRelay) -> None:
    started = time.monotonic()
    stream = RelayStream(Connection(relay.address), Query(), deadline=started + 0.3, **FAST)
    events = drain(stream)
    assert time.monotonic() - started >= 0.3, "ended before its deadline"
    assert len(received(events)) == 20
    assert Idle() in events
    assert not our_threads()


def test_until_ends_a_follow_stream(relay: FakeRelay) -> None:
    until = datetime.now(UTC) + timedelta(seconds=0.3)
    events = drain(RelayStream(Connection(relay.address), Query(until=until), **FAST))
    assert datetime.now(UTC) >= until - timedelta(milliseconds=50), "ended well before --until"
    assert len(received(events)) == 20
    assert not relay.requests[0].HasField("until")


def test_without_follow_the_server_ends_the_stream_at_until(relay: FakeRelay) -> None:
    query = Query(until=START + timedelta(milliseconds=45), follow=False)
    events = list(RelayStream(Connection(relay.address), query, **FAST).events())
    assert len(received(events)) == 5


def client_threads() -> set[threading.Thread]:
    # The fake relay's worker pool is the server side; everything else is the client's.
    return {t for t in threading.enumerate() if not t.name.startswith("ThreadPoolExecutor")}


def test_stop_from_another_thread_ends_promptly_without_leaking_threads(relay: FakeRelay) -> None:
    before = client_threads()
    # A tick longer than the patience: only stop() itself can end this follow stream in time.
    stream = RelayStream(Connection(relay.address), Query(), tick=2 * PATIENCE)
    timer = threading.Timer(0.2, stream.stop)
    timer.start()
    events = drain(stream)
    assert len(received(events)) == 20
    timer.join()
    assert not our_threads()
    assert client_threads() <= before


def test_stop_from_a_signal_handler(relay: FakeRelay) -> None:
    # Signals reach the main thread only, so the stream is read here, with a watchdog deadline
    # and a tick longer than it: only the handler's stop() can end the stream before the deadline.
    watchdog = time.monotonic() + PATIENCE
    stream = RelayStream(Connection(relay.address), Query(), deadline=watchdog, tick=2 * PATIENCE)
    previous = signal.signal(signal.SIGALRM, lambda _number, _frame: stream.stop())
    signal.setitimer(signal.ITIMER_REAL, 0.2)
    try:
        events = list(stream.events())
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert time.monotonic() < watchdog, "the signal handler's stop() did not end the stream"
    assert len(received(events)) == 20
    assert not our_threads()


def test_leaving_the_loop_early_cleans_up(relay: FakeRelay) -> None:
    events = RelayStream(Connection(relay.address), Query(), **FAST).events()
    for event in events:
        if isinstance(event, Flow):
            break
    events.close()
    assert not our_threads()


# ---------------------------------------------------------------------------
# Reconnecting


@pytest.mark.parametrize(
    ("overlap", "uuids"),
    [
        pytest.param(0.0, True, id="since-last-flow"),
        pytest.param(0.05, True, id="with-overlap"),
        pytest.param(0.05, False, id="no-uuids"),
    ],
)
def test_relay_restart_resumes_without_losing_or_repeating_flows(overlap: float, uuids: bool) -> None:
    history = [node_status_event(relay_pb2.NODE_CONNECTED, ["test/node-a", "test/node-b"]), *flow_events(30)]
    later = flow_events(10, start=START + timedelta(seconds=1), first_index=30)
    if not uuids:
        for event in [*history[1:], *later]:
            event.flow.ClearField("uuid")
    expected = [flow_from_proto(e.flow) for e in [*history[1:], *later]]
    with FakeRelay(history) as relay:
        stream = RelayStream(Connection(relay.address, timeout=1), Query(), resume_overlap=overlap, **FAST)
        events: list[Event] = []
        flows = []
        for event in stream.events():
            events.append(event)
            if isinstance(event, Flow):
                flows.append(event)
                if len(flows) == 10:
                    relay.restart()
            elif isinstance(event, Connected) and event.resumed_from is not None:
                relay.append(*later)
            if len(flows) == len(expected):
                stream.stop()
    assert flows == expected
    kinds = [type(e).__name__ for e in events]
    assert kinds.count("Reconnecting") == 1
    assert kinds.count("Connected") == 2
    broke = kinds.index("Reconnecting")
    last_before = received(events[:broke])[-1]
    assert last_before.time is not None
    resumed = next(e for e in events if isinstance(e, Connected) and e.resumed_from is not None)
    assert resumed.resumed_from == last_before.time - timedelta(seconds=overlap)
    assert relay.requests[-1].since.ToDatetime(tzinfo=UTC) == resumed.resumed_from
    assert isinstance(events[broke], Reconnecting) and events[broke].attempt == 1
    assert stream.stats.reconnects == 1
    assert stream.stats.duplicates >= 1
    assert stream.stats.received == len(expected)


def test_backoff_grows_while_the_relay_is_down() -> None:
    history = flow_events(5)
    with FakeRelay(history) as relay:
        stream = RelayStream(Connection(relay.address, timeout=0.1), Query(), **FAST)
        attempts: list[Reconnecting] = []
        for event in stream.events():
            if isinstance(event, Flow) and event.uuid == history[-1].flow.uuid and not attempts:
                relay.stop()
            elif isinstance(event, Reconnecting):
                attempts.append(event)
                if len(attempts) == 3:
                    relay.start()
            elif isinstance(event, Connected) and event.resumed_from is not None:
                stream.stop()
    assert [a.attempt for a in attempts] == [1, 2, 3]
    assert attempts[0].delay < attempts[2].delay <= 0.1 * 1.25
    assert "Connection refused" in attempts[1].error
    assert stream.stats.reconnects == 1


def test_dedupe_memory_follows_the_window_not_the_flow_count() -> None:
    recent = _RecentFlows(timedelta(seconds=1))
    for i in range(10_000):
        assert recent.add(f"uuid-{i}", START + timedelta(milliseconds=10 * i))
    assert len(recent) <= 102
    assert not recent.add("uuid-9999", START + timedelta(milliseconds=10 * 9999))
    assert recent.add("uuid-0", START)


def test_events_can_be_iterated_once(relay: FakeRelay) -> None:
    stream = RelayStream(Connection(relay.address), Query(follow=False))
    list(stream.events())
    with pytest.raises(RuntimeError):
        stream.events()


def test_flow_without_time_takes_the_response_time() -> None:
    event = flow_events(1)[0]
    event.flow.ClearField("time")
    event.flow.ClearField("node_name")
    saved = io.BytesIO()
    with FakeRelay([event]) as relay:
        (got,) = received(list(RelayStream(Connection(relay.address), Query(follow=False), save=saved).events()))
    assert got.time == START
    assert got.node_name == "test/node-a"
    (line,) = saved.getvalue().splitlines()
    assert json_format.Parse(line, observer_pb2.GetFlowsResponse()).time.ToDatetime(tzinfo=UTC) == START


def test_a_relay_that_never_answers_before_the_run_ends_is_an_error() -> None:
    # A listening socket that never speaks HTTP/2: the dial waits, and the deadline comes first.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        deadline = time.monotonic() + 0.3
        stream = RelayStream(Connection(address, timeout=2 * PATIENCE), Query(), deadline=deadline, **FAST)
        with pytest.raises(RelayError) as caught:
            drain(stream)
    assert str(caught.value).startswith(
        f"cannot connect to Hubble Relay at {address}: no answer before the end of the run (--duration / --until)"
    )
