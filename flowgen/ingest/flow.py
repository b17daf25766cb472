"""The flow model: frozen, typed values holding what a policy generator reads from a Hubble flow.

Enum members carry Hubble's wire strings (the proto enum names), so a value
prints the way `hubble observe -o json` shows it. Every field has a default
that means "Hubble did not say": 0, "", (), None or the UNKNOWN member.

The shape follows Hubble's Flow message (a flow has an `ip`, an `l4` holding
one of `tcp`/`udp`/..., an `l7` holding one of `http`/`dns`/`kafka`), so that
flowgen.ingest.jsonlines can decode Hubble JSON straight into these values, with no
intermediate copy: the values are msgspec Structs rather than dataclasses for
that reason. They are just as frozen, slotted, hashable and typed. A field
that declares `name=` is stored under that key in Hubble JSON.
`forbid_unknown_fields` lets the reader notice fields from a newer Hubble (it
then falls back to protobuf's tolerant parser for that line).

Times are `datetime`s in UTC to the microsecond (Hubble's nanoseconds are
rounded half up, as msgspec does when it decodes them).
"""

from __future__ import annotations

import enum
from datetime import datetime

import msgspec
from msgspec import field


class _Value(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    """Base of every flow value (frozen, hashable, no reference cycles possible)."""


class Verdict(enum.StrEnum):
    VERDICT_UNKNOWN = "VERDICT_UNKNOWN"
    FORWARDED = "FORWARDED"
    DROPPED = "DROPPED"
    ERROR = "ERROR"
    # Would have been dropped; the endpoint is in policy audit mode.
    AUDIT = "AUDIT"
    # Allowed and sent to the L7 proxy.
    REDIRECTED = "REDIRECTED"
    TRACED = "TRACED"
    TRANSLATED = "TRANSLATED"


class FlowType(enum.StrEnum):
    UNKNOWN_TYPE = "UNKNOWN_TYPE"
    L3_L4 = "L3_L4"
    L7 = "L7"
    SOCK = "SOCK"


class TrafficDirection(enum.StrEnum):
    TRAFFIC_DIRECTION_UNKNOWN = "TRAFFIC_DIRECTION_UNKNOWN"
    INGRESS = "INGRESS"
    EGRESS = "EGRESS"


class ObservationPoint(enum.StrEnum):
    """Hubble's TraceObservationPoint: where in the datapath a trace event was seen."""

    UNKNOWN_POINT = "UNKNOWN_POINT"
    TO_PROXY = "TO_PROXY"
    TO_HOST = "TO_HOST"
    TO_STACK = "TO_STACK"
    TO_OVERLAY = "TO_OVERLAY"
    TO_ENDPOINT = "TO_ENDPOINT"
    FROM_ENDPOINT = "FROM_ENDPOINT"
    FROM_PROXY = "FROM_PROXY"
    FROM_HOST = "FROM_HOST"
    FROM_STACK = "FROM_STACK"
    FROM_OVERLAY = "FROM_OVERLAY"
    FROM_NETWORK = "FROM_NETWORK"
    TO_NETWORK = "TO_NETWORK"
    FROM_CRYPTO = "FROM_CRYPTO"
    TO_CRYPTO = "TO_CRYPTO"


class L7Type(enum.StrEnum):
    UNKNOWN_L7_TYPE = "UNKNOWN_L7_TYPE"
    REQUEST = "REQUEST"
    RESPONSE = "RESPONSE"
    SAMPLE = "SAMPLE"


class IPVersion(enum.StrEnum):
    IP_NOT_USED = "IP_NOT_USED"
    IPv4 = "IPv4"
    IPv6 = "IPv6"


class Protocol(enum.StrEnum):
    """The L4 protocol, named by the key Hubble writes under `l4`."""

    TCP = "TCP"
    UDP = "UDP"
    SCTP = "SCTP"
    ICMPv4 = "ICMPv4"
    ICMPv6 = "ICMPv6"
    VRRP = "VRRP"
    IGMP = "IGMP"


class EventType(enum.IntEnum):
    """Cilium monitor message types (`event_type.type`) that matter to flowgen."""

    UNSPEC = 0
    DROP = 1
    DEBUG = 2
    CAPTURE = 3
    TRACE = 4
    POLICY_VERDICT = 5
    RECORD_CAPTURE = 6
    TRACE_SOCK = 7
    L7 = 129
    AGENT = 130


class DropReason(enum.StrEnum):
    """Why the datapath dropped a packet (Hubble's DropReason names)."""

    DROP_REASON_UNKNOWN = "DROP_REASON_UNKNOWN"
    INVALID_SOURCE_MAC = "INVALID_SOURCE_MAC"
    INVALID_DESTINATION_MAC = "INVALID_DESTINATION_MAC"
    INVALID_SOURCE_IP = "INVALID_SOURCE_IP"
    # No allow rule matched (default deny).
    POLICY_DENIED = "POLICY_DENIED"
    INVALID_PACKET_DROPPED = "INVALID_PACKET_DROPPED"
    CT_TRUNCATED_OR_INVALID_HEADER = "CT_TRUNCATED_OR_INVALID_HEADER"
    CT_MISSING_TCP_ACK_FLAG = "CT_MISSING_TCP_ACK_FLAG"
    CT_UNKNOWN_L4_PROTOCOL = "CT_UNKNOWN_L4_PROTOCOL"
    CT_CANNOT_CREATE_ENTRY_FROM_PACKET = "CT_CANNOT_CREATE_ENTRY_FROM_PACKET"
    UNSUPPORTED_L3_PROTOCOL = "UNSUPPORTED_L3_PROTOCOL"
    MISSED_TAIL_CALL = "MISSED_TAIL_CALL"
    ERROR_WRITING_TO_PACKET = "ERROR_WRITING_TO_PACKET"
    UNKNOWN_L4_PROTOCOL = "UNKNOWN_L4_PROTOCOL"
    UNKNOWN_ICMPV4_CODE = "UNKNOWN_ICMPV4_CODE"
    UNKNOWN_ICMPV4_TYPE = "UNKNOWN_ICMPV4_TYPE"
    UNKNOWN_ICMPV6_CODE = "UNKNOWN_ICMPV6_CODE"
    UNKNOWN_ICMPV6_TYPE = "UNKNOWN_ICMPV6_TYPE"
    ERROR_RETRIEVING_TUNNEL_KEY = "ERROR_RETRIEVING_TUNNEL_KEY"
    ERROR_RETRIEVING_TUNNEL_OPTIONS = "ERROR_RETRIEVING_TUNNEL_OPTIONS"
    INVALID_GENEVE_OPTION = "INVALID_GENEVE_OPTION"
    UNKNOWN_L3_TARGET_ADDRESS = "UNKNOWN_L3_TARGET_ADDRESS"
    STALE_OR_UNROUTABLE_IP = "STALE_OR_UNROUTABLE_IP"
    NO_MATCHING_LOCAL_CONTAINER_FOUND = "NO_MATCHING_LOCAL_CONTAINER_FOUND"
    ERROR_WHILE_CORRECTING_L3_CHECKSUM = "ERROR_WHILE_CORRECTING_L3_CHECKSUM"
    ERROR_WHILE_CORRECTING_L4_CHECKSUM = "ERROR_WHILE_CORRECTING_L4_CHECKSUM"
    CT_MAP_INSERTION_FAILED = "CT_MAP_INSERTION_FAILED"
    INVALID_IPV6_EXTENSION_HEADER = "INVALID_IPV6_EXTENSION_HEADER"
    IP_FRAGMENTATION_NOT_SUPPORTED = "IP_FRAGMENTATION_NOT_SUPPORTED"
    SERVICE_BACKEND_NOT_FOUND = "SERVICE_BACKEND_NOT_FOUND"
    NO_TUNNEL_OR_ENCAPSULATION_ENDPOINT = "NO_TUNNEL_OR_ENCAPSULATION_ENDPOINT"
    FAILED_TO_INSERT_INTO_PROXYMAP = "FAILED_TO_INSERT_INTO_PROXYMAP"
    REACHED_EDT_RATE_LIMITING_DROP_HORIZON = "REACHED_EDT_RATE_LIMITING_DROP_HORIZON"
    UNKNOWN_CONNECTION_TRACKING_STATE = "UNKNOWN_CONNECTION_TRACKING_STATE"
    LOCAL_HOST_IS_UNREACHABLE = "LOCAL_HOST_IS_UNREACHABLE"
    NO_CONFIGURATION_AVAILABLE_TO_PERFORM_POLICY_DECISION = "NO_CONFIGURATION_AVAILABLE_TO_PERFORM_POLICY_DECISION"
    UNSUPPORTED_L2_PROTOCOL = "UNSUPPORTED_L2_PROTOCOL"
    NO_MAPPING_FOR_NAT_MASQUERADE = "NO_MAPPING_FOR_NAT_MASQUERADE"
    UNSUPPORTED_PROTOCOL_FOR_NAT_MASQUERADE = "UNSUPPORTED_PROTOCOL_FOR_NAT_MASQUERADE"
    FIB_LOOKUP_FAILED = "FIB_LOOKUP_FAILED"
    ENCAPSULATION_TRAFFIC_IS_PROHIBITED = "ENCAPSULATION_TRAFFIC_IS_PROHIBITED"
    INVALID_IDENTITY = "INVALID_IDENTITY"
    UNKNOWN_SENDER = "UNKNOWN_SENDER"
    NAT_NOT_NEEDED = "NAT_NOT_NEEDED"
    IS_A_CLUSTERIP = "IS_A_CLUSTERIP"
    FIRST_LOGICAL_DATAGRAM_FRAGMENT_NOT_FOUND = "FIRST_LOGICAL_DATAGRAM_FRAGMENT_NOT_FOUND"
    FORBIDDEN_ICMPV6_MESSAGE = "FORBIDDEN_ICMPV6_MESSAGE"
    DENIED_BY_LB_SRC_RANGE_CHECK = "DENIED_BY_LB_SRC_RANGE_CHECK"
    SOCKET_LOOKUP_FAILED = "SOCKET_LOOKUP_FAILED"
    SOCKET_ASSIGN_FAILED = "SOCKET_ASSIGN_FAILED"
    PROXY_REDIRECTION_NOT_SUPPORTED_FOR_PROTOCOL = "PROXY_REDIRECTION_NOT_SUPPORTED_FOR_PROTOCOL"
    # An explicit deny rule matched.
    POLICY_DENY = "POLICY_DENY"
    VLAN_FILTERED = "VLAN_FILTERED"
    INVALID_VNI = "INVALID_VNI"
    INVALID_TC_BUFFER = "INVALID_TC_BUFFER"
    NO_SID = "NO_SID"
    MISSING_SRV6_STATE = "MISSING_SRV6_STATE"
    NAT46 = "NAT46"
    NAT64 = "NAT64"
    AUTH_REQUIRED = "AUTH_REQUIRED"
    CT_NO_MAP_FOUND = "CT_NO_MAP_FOUND"
    SNAT_NO_MAP_FOUND = "SNAT_NO_MAP_FOUND"
    INVALID_CLUSTER_ID = "INVALID_CLUSTER_ID"
    UNSUPPORTED_PROTOCOL_FOR_DSR_ENCAP = "UNSUPPORTED_PROTOCOL_FOR_DSR_ENCAP"
    NO_EGRESS_GATEWAY = "NO_EGRESS_GATEWAY"
    UNENCRYPTED_TRAFFIC = "UNENCRYPTED_TRAFFIC"
    TTL_EXCEEDED = "TTL_EXCEEDED"
    NO_NODE_ID = "NO_NODE_ID"
    DROP_RATE_LIMITED = "DROP_RATE_LIMITED"
    IGMP_HANDLED = "IGMP_HANDLED"
    IGMP_SUBSCRIBED = "IGMP_SUBSCRIBED"
    MULTICAST_HANDLED = "MULTICAST_HANDLED"
    DROP_HOST_NOT_READY = "DROP_HOST_NOT_READY"
    DROP_EP_NOT_READY = "DROP_EP_NOT_READY"
    DROP_NO_EGRESS_IP = "DROP_NO_EGRESS_IP"
    DROP_PUNT_PROXY = "DROP_PUNT_PROXY"


class Workload(_Value, frozen=True):
    """The pod's owner as Hubble reports it (only for pods local to the observing node)."""

    name: str = ""
    kind: str = ""


class Endpoint(_Value, frozen=True):
    """One side of a flow. Identity labels, not the numeric identity, say who it is."""

    # Cilium endpoint id; 0 for endpoints not local to the observing node.
    endpoint_id: int = field(default=0, name="ID")
    # Security identity; 0 means unknown. Cluster-local and not stable over time.
    identity: int = 0
    cluster_name: str = ""
    namespace: str = ""
    # Identity labels as Hubble writes them ("k8s:app=web", "reserved:host"), sorted.
    labels: tuple[str, ...] = ()
    pod_name: str = ""
    workloads: tuple[Workload, ...] = ()


class IP(_Value, frozen=True):
    source: str = ""
    # The source after SNAT, when Cilium translated it (1.16+).
    source_xlated: str = ""
    destination: str = ""
    version: IPVersion = field(default=IPVersion.IP_NOT_USED, name="ipVersion")
    encrypted: bool = False


class TCPFlags(_Value, frozen=True):
    fin: bool = field(default=False, name="FIN")
    syn: bool = field(default=False, name="SYN")
    rst: bool = field(default=False, name="RST")
    psh: bool = field(default=False, name="PSH")
    ack: bool = field(default=False, name="ACK")
    urg: bool = field(default=False, name="URG")
    ece: bool = field(default=False, name="ECE")
    cwr: bool = field(default=False, name="CWR")
    ns: bool = field(default=False, name="NS")


class Ports(_Value, frozen=True):
    """A UDP or SCTP header."""

    source_port: int = 0
    destination_port: int = 0


class TCP(_Value, frozen=True):
    source_port: int = 0
    destination_port: int = 0
    # None when Hubble wrote no flags.
    flags: TCPFlags | None = None


class ICMP(_Value, frozen=True):
    type: int = 0
    code: int = 0


class VRRP(_Value, frozen=True):
    type: int = 0
    vrid: int = 0
    priority: int = 0


class IGMP(_Value, frozen=True):
    type: int = 0
    group_address: str = ""


class Layer4(_Value, frozen=True):
    """The L4 header: exactly one of the protocol records is set (none for an empty `l4`)."""

    tcp: TCP | None = field(default=None, name="TCP")
    udp: Ports | None = field(default=None, name="UDP")
    icmpv4: ICMP | None = field(default=None, name="ICMPv4")
    icmpv6: ICMP | None = field(default=None, name="ICMPv6")
    sctp: Ports | None = field(default=None, name="SCTP")
    vrrp: VRRP | None = field(default=None, name="VRRP")
    igmp: IGMP | None = field(default=None, name="IGMP")

    @property
    def protocol(self) -> Protocol | None:
        # Spelled out: this runs for every flow.
        if self.tcp is not None:
            return Protocol.TCP
        if self.udp is not None:
            return Protocol.UDP
        for protocol in (Protocol.ICMPv4, Protocol.ICMPv6, Protocol.SCTP, Protocol.VRRP, Protocol.IGMP):
            if getattr(self, protocol.value.lower()) is not None:
                return protocol
        return None

    @property
    def ports(self) -> TCP | Ports | None:
        """The header that carries ports (TCP, UDP or SCTP), if any."""
        return self.tcp or self.udp or self.sctp


class HTTPHeader(_Value, frozen=True):
    key: str = ""
    value: str = ""


class HTTP(_Value, frozen=True):
    # Response status; 0 on requests.
    code: int = 0
    method: str = ""
    # The full URL as Hubble renders it: scheme, host, path and raw query.
    url: str = ""
    protocol: str = ""
    headers: tuple[HTTPHeader, ...] = ()


class DNS(_Value, frozen=True):
    # The queried name, lowercased by Cilium's DNS proxy, with a trailing dot.
    query: str = ""
    ips: tuple[str, ...] = ()
    ttl: int = 0
    cnames: tuple[str, ...] = ()
    observation_source: str = ""
    # 0 NOERROR, 3 NXDOMAIN, ...
    rcode: int = 0
    qtypes: tuple[str, ...] = ()
    rrtypes: tuple[str, ...] = ()


class Kafka(_Value, frozen=True):
    error_code: int = 0
    api_version: int = 0
    # "produce", "fetch", ...
    api_key: str = ""
    correlation_id: int = 0
    topic: str = ""


class Layer7(_Value, frozen=True):
    """A proxy access-log record: at most one of http, dns, kafka is set."""

    type: L7Type = L7Type.UNKNOWN_L7_TYPE
    # Set on responses only.
    latency_ns: int = 0
    dns: DNS | None = None
    http: HTTP | None = None
    kafka: Kafka | None = None


class Service(_Value, frozen=True):
    """The Kubernetes Service whose frontend address one side of the flow used."""

    name: str = ""
    namespace: str = ""


class CiliumEventType(_Value, frozen=True):
    """The Cilium monitor message type (see EventType) and its sub type:
    the drop code for drops, the datapath point for traces."""

    type: int = 0
    sub_type: int = 0


_NO_ENDPOINT = Endpoint()


class Flow(_Value, frozen=True):
    """One Hubble flow event, reduced to what policy generation needs.

    The JSON reader yields instances of a private subclass that also holds,
    unparsed, the fields Hubble wrote and flowgen skips (they reference the
    line they came from). Equality and hashing therefore look only at the
    fields declared here, so a flow read from JSON equals the same flow
    converted from protobuf.
    """

    # Event time; None when Hubble gave none.
    time: datetime | None = None
    # Unique per event (Cilium 1.14+); "" on older agents.
    uuid: str = ""
    verdict: Verdict = Verdict.VERDICT_UNKNOWN
    # Why a DROPPED flow was dropped; DROP_REASON_UNKNOWN otherwise.
    drop_reason: DropReason = field(default=DropReason.DROP_REASON_UNKNOWN, name="drop_reason_desc")
    # None when the event had no IP header.
    ip: IP | None = field(default=None, name="IP")
    # None when the event had no L4 header.
    l4: Layer4 | None = None
    source: Endpoint = _NO_ENDPOINT
    destination: Endpoint = _NO_ENDPOINT
    flow_type: FlowType = field(default=FlowType.UNKNOWN_TYPE, name="Type")
    # "cluster/node", or just "node" in a cluster named "default".
    node_name: str = ""
    # DNS names the IPs are known by, from the DNS proxy's cache.
    source_names: tuple[str, ...] = ()
    destination_names: tuple[str, ...] = ()
    # Set for L7 (proxy access log) events only.
    l7: Layer7 | None = None
    event_type: CiliumEventType | None = None
    source_service: Service | None = None
    destination_service: Service | None = None
    traffic_direction: TrafficDirection = TrafficDirection.TRAFFIC_DIRECTION_UNKNOWN
    # Policy-verdict events: 0 none, 1 L3-only, 2 L3-L4, 3 L4-only, 4 all, ...
    policy_match_type: int = 0
    observation_point: ObservationPoint = field(default=ObservationPoint.UNKNOWN_POINT, name="trace_observation_point")
    # Three states: True, False, or None when the datapath did not know (drops).
    is_reply: bool | None = None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Flow):
            return NotImplemented
        return _own_fields(self) == _own_fields(other)

    def __hash__(self) -> int:
        return hash(_own_fields(self))

    @property
    def protocol(self) -> Protocol | None:
        return self.l4.protocol if self.l4 is not None else None

    @property
    def destination_port(self) -> int:
        """The destination port, 0 for protocols without ports."""
        ports = self.l4.ports if self.l4 is not None else None
        return ports.destination_port if ports is not None else 0


_FLOW_FIELDS = len(Flow.__struct_fields__)


def _own_fields(flow: Flow) -> tuple[object, ...]:
    return msgspec.structs.astuple(flow)[:_FLOW_FIELDS]
