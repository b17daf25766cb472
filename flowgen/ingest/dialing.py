"""Reaching Hubble Relay: the `Connection` settings, TLS credentials, dialing, and
errors that say how to fix a relay that cannot be reached or refuses a call.

Connection flags and defaults follow the hubble CLI (ref §1.5): `tls://` turns
TLS on, a client certificate implies TLS, verification is on unless
`allow_insecure`. `dial` waits for the relay to answer (it may be starting, or
a port-forward may be coming up), except that a TLS failure is final at once.
`server_status` is the connectivity check; hubble.py streams flows over the
channels dialed here.
"""

from __future__ import annotations

import re
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import grpc

from flowgen._pb.observer import observer_pb2
from flowgen.errors import RelayError

DEFAULT_SERVER = "localhost:4245"
_TLS_PREFIX = "tls://"
_SERVER_STATUS = "/observer.Observer/ServerStatus"
# How often a blocked wait looks at the stop flag while dialing, in seconds.
_SLICE = 0.1


@dataclass(frozen=True, slots=True)
class Connection:
    """How to reach Hubble Relay (or one node's Hubble server), with the hubble CLI's defaults."""

    # host:port; a "tls://" prefix turns TLS on.
    server: str = DEFAULT_SERVER
    tls: bool = False
    # PEM bundles, concatenated; empty means the system's trusted roots.
    ca_cert_files: tuple[str, ...] = ()
    # Client certificate and key for mutual TLS; both or neither; either implies TLS.
    client_cert_file: str | None = None
    client_key_file: str | None = None
    # The name to verify in the server certificate (and send as SNI); None means the host of `server`.
    server_name: str | None = None
    # Skip server certificate verification: INSECURE, anyone on the path can pose as the relay.
    allow_insecure: bool = False
    # How long to wait for a connection, in seconds.
    timeout: float = 5.0

    def __post_init__(self) -> None:
        if not self.target:
            raise RelayError("no server address given: pass --server host:port (e.g. localhost:4245)")
        if (self.client_cert_file is None) != (self.client_key_file is None):
            missing = "--tls-client-key-file" if self.client_key_file is None else "--tls-client-cert-file"
            raise RelayError(f"mutual TLS needs a client certificate and its key together: add {missing}")
        if not self.uses_tls:
            for flag, value in (
                ("--tls-ca-cert-files", self.ca_cert_files),
                ("--tls-server-name", self.server_name),
                ("--tls-allow-insecure", self.allow_insecure),
            ):
                if value:
                    raise RelayError(
                        f"{flag} is set but TLS is off: add --tls, or write the server as tls://{self.target}"
                    )
        if self.timeout <= 0:
            raise RelayError(f"the connection timeout must be more than 0 seconds, got {self.timeout:g}")

    @property
    def uses_tls(self) -> bool:
        return self.tls or self.server.startswith(_TLS_PREFIX) or self.client_cert_file is not None

    @property
    def target(self) -> str:
        """The address to dial, without the tls:// prefix."""
        return self.server.removeprefix(_TLS_PREFIX)

    @property
    def warning(self) -> str | None:
        """What the user must be told before connecting, if anything."""
        if self.allow_insecure:
            return (
                "TLS certificate verification is OFF (--tls-allow-insecure): the relay's identity is not checked, "
                "so anyone on the network path could pose as it. Use --tls-ca-cert-files instead when you can."
            )
        return None


class DialError(Exception):
    """The relay could not be reached; `reason` is gRPC's (shortened) account of why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# gRPC's words for a failed TLS handshake or certificate check (BoringSSL and TSI errors).
_TLS_TROUBLE = re.compile(r"handshake|SSL_ERROR|CERTIFICATE_VERIFY|hostname verification|TSI_", re.IGNORECASE)
# Why a first connection failed when the run ended (--duration, --until) before the relay answered.
NO_ANSWER_IN_RUN = "no answer before the end of the run (--duration / --until)"
# Nothing listens at the address: the host answered with a reset (ECONNREFUSED).
_REFUSED = re.compile(r"connection refused|ECONNREFUSED", re.IGNORECASE)
_GRPC_PREFIX = re.compile(r"^failed to connect to all addresses; last error: (?:[A-Z_]+: )?(?:ipv[46]:\S+: )?")


def shorten(details: str | None) -> str:
    text = _GRPC_PREFIX.sub("", details or "no details").removesuffix(": OK")
    return text or "no details"


def _read_pem(path: str, what: str, flag: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise RelayError(f"cannot read the {what} {path}: no such file. Check {flag}") from None
    except OSError as err:
        raise RelayError(f"cannot read the {what} {path}: {err.strerror}. Check {flag}") from None
    if b"-----BEGIN " not in data:
        raise RelayError(f"{path} is not a PEM file (expected the {what}). Check {flag}")
    return data


def _host_port(target: str) -> tuple[str, int]:
    if target.startswith("["):
        host, _, rest = target[1:].partition("]")
        port = rest.removeprefix(":")
    elif target.count(":") == 1:
        host, _, port = target.partition(":")
    else:
        host, port = target, ""
    if port and not port.isdigit():
        raise DialError(f"cannot tell the host and port in {target!r}")
    return host, int(port or 443)


def _name_in(info: dict[str, object]) -> str | None:
    """A name the certificate described by ssl's getpeercert() is valid for."""
    entries = info.get("subjectAltName")
    names = [e for e in entries if isinstance(e, tuple) and len(e) == 2] if isinstance(entries, tuple) else []
    for kind in ("DNS", "IP Address"):
        for key, value in names:
            if key == kind and isinstance(value, str):
                # A wildcard certificate: any name under it will do.
                return f"relay{value[1:]}" if value.startswith("*.") else value
    return None


def _server_identity(connection: Connection) -> tuple[bytes, str | None]:
    """For --tls-allow-insecure: the server's own certificate, to trust as the only root, and a name in it.

    grpcio cannot switch verification off, so the certificate the server presents is fetched
    (unverified) and then trusted for this connection alone.
    """
    host, port = _host_port(connection.target)
    sni = connection.server_name or host

    def handshake(context: ssl.SSLContext) -> ssl.SSLSocket:
        context.set_alpn_protocols(["h2"])
        if connection.client_cert_file and connection.client_key_file:
            context.load_cert_chain(connection.client_cert_file, connection.client_key_file)
        raw = socket.create_connection((host, port), timeout=connection.timeout)
        try:
            return context.wrap_socket(raw, server_hostname=sni)
        except BaseException:
            raw.close()
            raise

    try:
        blind = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        blind.check_hostname = False
        blind.verify_mode = ssl.CERT_NONE
        with handshake(blind) as tls:
            der = tls.getpeercert(binary_form=True)
        if not der:
            raise DialError("the server presented no TLS certificate")
        pem = ssl.DER_cert_to_PEM_cert(der)
        # A second handshake trusting just that certificate lets ssl decode the names in it.
        pinned = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        pinned.check_hostname = False
        pinned.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
        pinned.load_verify_locations(cadata=pem)
        with handshake(pinned) as tls:
            info = tls.getpeercert() or {}
    except ssl.SSLError as err:
        raise DialError(f"TLS handshake failed while fetching the server certificate: {err}") from None
    except OSError as err:
        raise DialError(err.strerror or str(err) or type(err).__name__) from None
    return pem.encode(), _name_in(dict(info)) or connection.server_name


def _open_channel(connection: Connection) -> grpc.Channel:
    # grpc.experimental.ChannelOptions.SingleThreadedUnaryStream: the thread iterating a stream reads
    # the responses itself instead of waiting for grpcio's polling thread to hand each one over,
    # which about doubles the message rate (bench/observe.py). Only the pump thread iterates.
    options: list[tuple[str, str | int]] = [("SingleThreadedUnaryStream", 1)]
    if not connection.uses_tls:
        return grpc.insecure_channel(connection.target, options=options)
    roots = b"".join(_read_pem(p, "CA certificate", "--tls-ca-cert-files") for p in connection.ca_cert_files) or None
    cert = key = None
    if connection.client_cert_file and connection.client_key_file:
        cert = _read_pem(connection.client_cert_file, "client certificate", "--tls-client-cert-file")
        key = _read_pem(connection.client_key_file, "client key", "--tls-client-key-file")
    name = connection.server_name
    if connection.allow_insecure:
        roots, name = _server_identity(connection)
    if name:
        options.append(("grpc.ssl_target_name_override", name))
    credentials = grpc.ssl_channel_credentials(root_certificates=roots, private_key=key, certificate_chain=cert)
    return grpc.secure_channel(connection.target, credentials, options=options)


def _status_call(
    channel: grpc.Channel,
) -> grpc.UnaryUnaryMultiCallable[observer_pb2.ServerStatusRequest, observer_pb2.ServerStatusResponse]:
    return channel.unary_unary(
        _SERVER_STATUS,
        request_serializer=observer_pb2.ServerStatusRequest.SerializeToString,
        response_deserializer=observer_pb2.ServerStatusResponse.FromString,
    )


def _transport_error(channel: grpc.Channel) -> str | None:
    """Why the channel is not connected, if gRPC knows yet (a fail-fast call reads its last error)."""
    try:
        _status_call(channel)(observer_pb2.ServerStatusRequest(), timeout=_SLICE / 2, wait_for_ready=False)
    except grpc.RpcError as err:
        if err.code() is grpc.StatusCode.UNAVAILABLE:
            return shorten(err.details())
    return None


def _answers(channel: grpc.Channel) -> bool:
    """Whether the server answers within a slice. A ServerStatus call that waits for the
    connection tells, without grpc's connectivity watcher thread (which fails when the
    channel is closed under it). Any answer, even UNIMPLEMENTED, means connected."""
    try:
        _status_call(channel)(observer_pb2.ServerStatusRequest(), timeout=_SLICE, wait_for_ready=True)
    except grpc.RpcError as err:
        return err.code() is not grpc.StatusCode.DEADLINE_EXCEEDED
    return True


def dial(connection: Connection, give_up: Callable[[], bool]) -> grpc.Channel | None:
    """A connected channel; None if `give_up()` turned true first. Raises DialError.

    Waits up to the timeout for the relay to answer (it may be starting, or a port-forward
    may be coming up), except that a refused connection (nothing listens there) and a TLS
    failure are final at once.
    """
    channel = _open_channel(connection)
    end = time.monotonic() + connection.timeout
    reason = f"no answer within {connection.timeout:g}s"
    try:
        while not give_up():
            if _answers(channel):
                return channel
            reason = _transport_error(channel) or reason
            if _TLS_TROUBLE.search(reason) or _REFUSED.search(reason) or time.monotonic() >= end:
                raise DialError(reason)
    except BaseException:
        channel.close()
        raise
    channel.close()
    return None


def server_version(channel: grpc.Channel, timeout: float) -> str:
    """The server's version from ServerStatus, or "" when it does not say."""
    status = channel.unary_unary(
        _SERVER_STATUS,
        request_serializer=observer_pb2.ServerStatusRequest.SerializeToString,
        response_deserializer=observer_pb2.ServerStatusResponse.FromString,
    )
    try:
        return status(observer_pb2.ServerStatusRequest(), timeout=timeout).version
    except grpc.RpcError:
        return ""


def connect_error(connection: Connection, reason: str) -> RelayError:
    where = f"Hubble Relay at {connection.target}"
    if _TLS_TROUBLE.search(reason):
        if "WRONG_VERSION_NUMBER" in reason:
            advice = "The server does not seem to speak TLS: drop --tls (and any tls:// prefix)."
        elif "hostname verification" in reason.lower():
            advice = (
                "The relay's certificate does not name the server: set --tls-server-name to a name in it "
                "(usually hubble.hubble-relay.cilium.io)."
            )
        else:
            advice = (
                "Check --tls-ca-cert-files (the CA that signed the relay's certificate) and --tls-server-name "
                "(a name in that certificate, usually hubble.hubble-relay.cilium.io)."
            )
        return RelayError(f"TLS handshake with {where} failed: {reason}. {advice}")
    hint = ""
    if "closed" in reason.lower() or "reset" in reason.lower():
        if connection.uses_tls and connection.client_cert_file is None:
            hint = (
                " The relay closed the TLS connection: if it requires client certificates (mutual TLS), "
                "pass --tls-client-cert-file and --tls-client-key-file."
            )
        elif not connection.uses_tls:
            hint = f" If the relay serves TLS, add --tls (or write tls://{connection.target})."
    when = "" if _REFUSED.search(reason) or reason == NO_ANSWER_IN_RUN else f" within {connection.timeout:g}s"
    return RelayError(
        f"cannot connect to {where}{when}: {reason}. Is Relay reachable? "
        f"Try `cilium hubble port-forward` and --server localhost:4245, or check --tls / certificates.{hint}"
    )


def refused(connection: Connection, rpc: str, code: grpc.StatusCode, details: str) -> RelayError:
    what = f"observer.Observer/{rpc}"
    advice = {
        grpc.StatusCode.UNIMPLEMENTED: (
            f"Is {connection.target} Hubble Relay (port 4245) or a Hubble server (port 4244)? It does not serve {what}."
        ),
        grpc.StatusCode.INVALID_ARGUMENT: "Check the namespaces and the --since / --until times.",
        grpc.StatusCode.UNAUTHENTICATED: "The server wants credentials: check the client certificate.",
        grpc.StatusCode.PERMISSION_DENIED: "The server refuses this client: check the client certificate.",
    }.get(code, "")
    return RelayError(f"Hubble Relay at {connection.target} refused {what}: {code.name}: {details}. {advice}".rstrip())


@dataclass(frozen=True, slots=True)
class ServerStatus:
    """What ServerStatus reports (through a relay: summed over nodes; node counts only from a relay)."""

    version: str
    num_flows: int
    max_flows: int
    seen_flows: int
    uptime: timedelta
    flows_rate: float
    connected_nodes: int | None
    unavailable_nodes: int | None
    unavailable_node_names: tuple[str, ...]


def server_status(connection: Connection) -> ServerStatus:
    """Ask the relay for its status (a connectivity check that also reads the version)."""
    try:
        channel = dial(connection, lambda: False)
    except DialError as failed:
        raise connect_error(connection, failed.reason) from None
    assert channel is not None  # give_up never turns true
    with channel:
        status = channel.unary_unary(
            _SERVER_STATUS,
            request_serializer=observer_pb2.ServerStatusRequest.SerializeToString,
            response_deserializer=observer_pb2.ServerStatusResponse.FromString,
        )
        try:
            r = status(observer_pb2.ServerStatusRequest(), timeout=connection.timeout)
        except grpc.RpcError as err:
            raise refused(connection, "ServerStatus", err.code(), shorten(err.details())) from None
    return ServerStatus(
        version=r.version,
        num_flows=r.num_flows,
        max_flows=r.max_flows,
        seen_flows=r.seen_flows,
        uptime=timedelta(microseconds=r.uptime_ns // 1000),
        flows_rate=r.flows_rate,
        connected_nodes=r.num_connected_nodes.value if r.HasField("num_connected_nodes") else None,
        unavailable_nodes=r.num_unavailable_nodes.value if r.HasField("num_unavailable_nodes") else None,
        unavailable_node_names=tuple(r.unavailable_nodes),
    )
