"""The live flow stream from Hubble Relay (observer.Observer/GetFlows over gRPC).

`RelayStream` is a `flowgen.ingest.events.Source`: `events()` yields flows as the
same `flowgen.ingest.flow.Flow` values the file readers give (one conversion,
`flowgen.ingest.proto.flow_from_proto`), plus the other things a live stream says:
node status changes, lost events, connects, reconnects, and an `Idle` tick while
nothing arrives. With `save`, each flow's response is also written as a jsonpb line
(`--save-flows`) before the flow is yielded.

Why a thread and a queue: a gRPC response iterator blocks in `next()` with no
timeout. A small pump thread iterates the call and puts each response on a
queue; `events()` reads that queue with a timeout of one tick, so it can yield
`Idle`, end at the deadline and notice `stop()` promptly, while the main thread
stays free to handle signals. `stop()` only sets a flag and puts a wake-up on a
`queue.SimpleQueue` (whose `put` is reentrant, so a signal handler may call
it); the consumer then cancels the call and joins the thread. The pump takes a
permit per chunk of responses, so a slow consumer holds the stream back
(gRPC flow control) instead of buffering it in memory.

Resume and dedupe: when an established stream breaks (relay restart, port-forward
drop), flowgen dials again with exponential backoff and asks for flows `since`
the newest flow time it has seen, less `resume_overlap` seconds (the relay
orders flows only roughly, ref hubble-api.md §5.4, so a little overlap
recovers flows that were still in its sort buffer). The replay repeats flows
already yielded; they are dropped by `uuid` (Cilium 1.14+), or by the whole
flow value when the uuid is empty. Only the keys of flows within the overlap
window (plus slack for reordering) of the newest flow are kept, so memory
depends on the flow rate, not on how long the stream runs.

Dialing, TLS and the messages for a relay that cannot be reached or refuses a
call are in flowgen.ingest.dialing, which gives this module its channels.
"""

from __future__ import annotations

import queue
import random
import threading
import time
from collections import deque
from collections.abc import Generator, Hashable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import IO

import grpc

from flowgen._pb.observer import observer_pb2
from flowgen._pb.relay import relay_pb2
from flowgen.errors import RelayError
from flowgen.ingest.dialing import (
    NO_ANSWER_IN_RUN,
    Connection,
    DialError,
    connect_error,
    dial,
    refused,
    server_version,
    shorten,
)
from flowgen.ingest.events import Connected, Event, Idle, Lost, NodeStatus, Reconnecting
from flowgen.ingest.proto import flow_from_proto, lost_source_name, response_line, time_from_ns
from flowgen.ingest.query import Query, flows_request

_GET_FLOWS = "/observer.Observer/GetFlows"

# How often the pump, blocked by back-pressure, looks whether the consumer has gone, in seconds.
_SLICE = 0.1
# Back-pressure: the pump takes one permit per _CHUNK responses; at most
# _PERMITS * _CHUNK responses wait in the queue.
_CHUNK = 64
_PERMITS = 32
# Extra dedupe memory beyond resume_overlap, for flows the relay delivers out of time order.
_REORDER_SLACK = timedelta(seconds=2)
# A hard cap on remembered flow keys, whatever the rate.
_MAX_REMEMBERED = 1_000_000
# Errors after which an established stream is resumed; the others are the server saying no.
_RETRYABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
    }
)
_NODE_STATE = {v.number: v.name for v in relay_pb2.NodeState.DESCRIPTOR.values}


@dataclass(slots=True)
class StreamStats:
    """Counts for a summary; updated as events() runs."""

    # Flows yielded.
    received: int = 0
    # Flows sent again after a resume, dropped.
    duplicates: int = 0
    # Successful reconnections after the stream broke.
    reconnects: int = 0
    # Flows written to `save` (--save-flows).
    saved: int = 0
    # Responses of a kind this flowgen does not know (from a newer Hubble), counted and skipped.
    unknown: int = 0


# ---------------------------------------------------------------------------
# The stream


class _RecentFlows:
    """Keys of the flows seen within `window` of the newest flow time: what a resumed stream may repeat."""

    def __init__(self, window: timedelta, limit: int = _MAX_REMEMBERED) -> None:
        self.window = window
        self.limit = limit
        self.newest: datetime | None = None
        self._floor = datetime.min.replace(tzinfo=UTC)
        self._keys: set[Hashable] = set()
        self._order: deque[tuple[datetime, Hashable]] = deque()

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, key: Hashable, at: datetime | None) -> bool:
        """Remember `key`; False if it was already there (a duplicate)."""
        keys = self._keys
        if key in keys:
            return False
        keys.add(key)
        if at is not None and (self.newest is None or at > self.newest):
            self.newest = at
            self._floor = at - self.window
        order = self._order
        order.append((at or self.newest or self._floor, key))
        while order and (order[0][0] < self._floor or len(order) > self.limit):
            keys.discard(order.popleft()[1])
        return True


class _End:
    """The pump's last item: the call ended, normally (error None) or with an error."""

    __slots__ = ("error",)

    def __init__(self, error: Exception | None) -> None:
        self.error = error


_WAKE = object()


@dataclass(frozen=True, slots=True)
class _Broken:
    reason: str
    code: grpc.StatusCode | None
    details: str
    received: bool


def _pump(
    call: Iterator[observer_pb2.GetFlowsResponse],
    out: queue.SimpleQueue[object],
    permits: threading.Semaphore,
    abandoned: threading.Event,
) -> None:
    """Move responses from the gRPC call to the queue (runs in its own thread)."""
    error: Exception | None = None
    try:
        for count, response in enumerate(call):
            if count % _CHUNK == 0:
                while not permits.acquire(timeout=_SLICE):
                    if abandoned.is_set():
                        return
            out.put(response)
    except Exception as err:  # handed to the consumer, which raises what it does not handle
        error = err
    out.put(_End(error))


class RelayStream:
    """Flows and status from Hubble Relay, resumed across disconnects. Iterate events() once.

    `deadline` is a time.monotonic() value at which to stop (for --duration). `tick` is how
    often Idle is yielded while nothing arrives. Reconnects wait backoff_initial seconds,
    doubling up to backoff_max (plus up to a quarter of jitter). A resumed stream asks for
    flows from `resume_overlap` seconds before the newest flow seen. `save` receives each
    flow's response as a jsonpb line, readable by hubble and flowgen.
    """

    def __init__(
        self,
        connection: Connection,
        query: Query,
        *,
        deadline: float | None = None,
        tick: float = 1.0,
        backoff_initial: float = 1.0,
        backoff_max: float = 30.0,
        resume_overlap: float = 1.0,
        save: IO[bytes] | None = None,
    ) -> None:
        self.connection = connection
        self.query = query
        self.deadline = deadline
        self.tick = tick
        self.backoff_initial = backoff_initial
        self.backoff_max = max(backoff_max, backoff_initial)
        self.resume_overlap = timedelta(seconds=max(resume_overlap, 0.0))
        self.stats = StreamStats()
        self._stopping = False
        self._started = False
        self._end_at: float | None = None
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._recent = _RecentFlows(self.resume_overlap + _REORDER_SLACK)
        # The relay's clock, from responses other than flows: a resume point before any flow arrives.
        self._server_time: datetime | None = None
        self._channel: grpc.Channel | None = None
        self._random = random.Random()
        self._save = save

    def stop(self) -> None:
        """Make events() end soon. Safe from any thread and from a signal handler."""
        self._stopping = True
        self._queue.put(_WAKE)

    def events(self) -> Iterator[Event]:
        """Connect, then yield events until the deadline, `until`, stop(), or (without follow) the end.

        Raises RelayError if the first connection fails or the server refuses the request.
        """
        if self._started:
            raise RuntimeError("RelayStream.events() can be iterated only once")
        self._started = True
        return self._run()

    # -- the state machine

    def _run(self) -> Generator[Event, None, None]:
        try:
            self._end_at = self._end_time()
            version = self._connect(first=True)
            if version is None:
                return
            yield Connected(self.connection.target, version, None)
            request = flows_request(self.query)
            first = True
            attempt = 0
            while True:
                started = time.monotonic()
                broken = yield from self._stream(request)
                if broken is None:
                    return
                if first and not broken.received and time.monotonic() - started < self.connection.timeout:
                    raise self._break_error(broken)
                first = False
                if broken.received:
                    attempt = 0
                reason = broken.reason
                while True:
                    attempt += 1
                    delay = self._backoff(attempt)
                    yield Reconnecting(reason, attempt, delay)
                    yield from self._sleep(delay)
                    if self._over():
                        return
                    since = self._resume_point()
                    try:
                        version = self._connect(first=False)
                    except DialError as failed:
                        reason = failed.reason
                        continue
                    if version is None:
                        return
                    self.stats.reconnects += 1
                    yield Connected(self.connection.target, version, since)
                    request = flows_request(self.query, since=since)
                    break
        finally:
            self._close_channel()
            if self._save is not None:
                self._save.flush()

    def _end_time(self) -> float | None:
        ends = [self.deadline] if self.deadline is not None else []
        if self.query.until is not None and self.query.follow:
            left = (self.query.until - datetime.now(UTC)).total_seconds()
            ends.append(time.monotonic() + left)
        return min(ends) if ends else None

    def _over(self) -> bool:
        return self._stopping or (self._end_at is not None and time.monotonic() >= self._end_at)

    def _wait_time(self, limit: float) -> float:
        wait = min(limit, self.tick)
        if self._end_at is not None:
            wait = min(wait, self._end_at - time.monotonic())
        return max(wait, 0.0)

    def _connect(self, *, first: bool) -> str | None:
        """Dial; the server's version, or None when told to stop first. Raises on failure."""
        self._close_channel()
        try:
            channel = dial(self.connection, self._over)
        except DialError as failed:
            if first:
                raise connect_error(self.connection, failed.reason) from None
            raise
        if channel is None:
            if first and not self._stopping:
                # The run was over (--duration, --until) before the relay ever answered.
                raise connect_error(self.connection, NO_ANSWER_IN_RUN)
            return None
        self._channel = channel
        return server_version(channel, self.connection.timeout)

    def _close_channel(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    def _backoff(self, attempt: int) -> float:
        base = min(self.backoff_max, self.backoff_initial * 2.0 ** min(attempt - 1, 32))
        return min(self.backoff_max, base * (1 + self._random.random() / 4))

    def _sleep(self, seconds: float) -> Generator[Event, None, None]:
        """Wait, yielding Idle each tick; ends early on stop() or at the deadline."""
        end = time.monotonic() + seconds
        while not self._over():
            wait = self._wait_time(end - time.monotonic())
            if wait <= 0:
                return
            try:
                self._queue.get(timeout=wait)  # only stop() puts anything here now
            except queue.Empty:
                if wait >= self.tick:
                    yield Idle()

    def _resume_point(self) -> datetime | None:
        newest = self._recent.newest or self._server_time
        if newest is None:
            return self.query.since
        since = newest - self.resume_overlap
        return max(since, self.query.since) if self.query.since is not None else since

    def _stream(self, request: observer_pb2.GetFlowsRequest) -> Generator[Event, None, _Broken | None]:
        """One GetFlows call: None when the stream is over for good, or why it broke."""
        assert self._channel is not None
        get_flows = self._channel.unary_stream(
            _GET_FLOWS,
            request_serializer=observer_pb2.GetFlowsRequest.SerializeToString,
            response_deserializer=observer_pb2.GetFlowsResponse.FromString,
        )
        call = get_flows(request, wait_for_ready=False)
        abandoned = threading.Event()
        permits = threading.Semaphore(_PERMITS)
        pump = threading.Thread(
            target=_pump, args=(call, self._queue, permits, abandoned), name="flowgen-hubble-stream", daemon=True
        )
        pump.start()
        consumed = 0
        received = False
        get = self._queue.get
        try:
            while True:
                wait = self._wait_time(self.tick)
                if wait <= 0 or self._stopping:
                    return None
                try:
                    item = get(timeout=wait)
                except queue.Empty:
                    if wait >= self.tick:
                        if self._save is not None:
                            self._save.flush()
                        yield Idle()
                    continue
                if isinstance(item, observer_pb2.GetFlowsResponse):
                    received = True
                    consumed += 1
                    if consumed % _CHUNK == 0:
                        permits.release()
                    event = self._event(item)
                    if event is not None:
                        yield event
                elif isinstance(item, _End):
                    return self._ended(item, request, received)
        finally:
            abandoned.set()
            call.cancel()
            permits.release(_PERMITS)
            pump.join()
            self._drain()

    def _drain(self) -> None:
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return

    def _ended(self, end: _End, request: observer_pb2.GetFlowsRequest, received: bool) -> _Broken | None:
        if self._over():
            return None
        if end.error is None:
            if not request.follow:
                return None
            return _Broken("the relay ended the stream", None, "", received)
        if not isinstance(end.error, grpc.RpcError):
            raise end.error
        code = end.error.code()
        details = shorten(end.error.details())
        if code in _RETRYABLE:
            return _Broken(f"{code.name}: {details}", code, details, received)
        raise refused(self.connection, "GetFlows", code, details)

    def _break_error(self, broken: _Broken) -> RelayError:
        if broken.code is grpc.StatusCode.UNAVAILABLE:
            return connect_error(self.connection, broken.details)
        if broken.code is None:
            return RelayError(
                f"Hubble Relay at {self.connection.target} ended the GetFlows stream at once, without sending anything"
            )
        return refused(self.connection, "GetFlows", broken.code, broken.details)

    def _event(self, response: observer_pb2.GetFlowsResponse) -> Event | None:
        kind = response.WhichOneof("response_types")
        stats = self.stats
        if kind == "flow":
            message = response.flow
            at = None
            if not message.HasField("time") and response.HasField("time"):
                at = time_from_ns(response.time.ToNanoseconds())
            flow = flow_from_proto(message, time=at, node_name=response.node_name)
            if not self._recent.add(flow.uuid or flow, flow.time):
                stats.duplicates += 1
                return None
            stats.received += 1
            if self._save is not None:
                self._save.write(response_line(response))
                stats.saved += 1
            return flow
        if response.HasField("time"):
            at = time_from_ns(response.time.ToNanoseconds())
            if self._server_time is None or at > self._server_time:
                self._server_time = at
        if kind == "node_status":
            status = response.node_status
            state = _NODE_STATE.get(status.state_change, "UNKNOWN_NODE_STATE")
            return NodeStatus(state, tuple(status.node_names), status.message)
        if kind == "lost_events":
            lost = response.lost_events
            return Lost(lost_source_name(lost.source), lost.num_events_lost)
        stats.unknown += 1
        return None
