"""Which flows are evidence for a policy, and what each one says (ref cilium-policy.md §10.2).

A flow is evidence when it is a request (never a reply: replies pass by
connection tracking, and a rule built from one would point the wrong way)
at a point where Cilium makes or reports a policy decision:

- policy-verdict events, drops, L7 proxy records, and trace events at the
  pod's own interface (`FROM_ENDPOINT`, `TO_ENDPOINT`) are used; trace events
  at the other datapath points are the same packet again and are skipped;
- `FORWARDED`, `REDIRECTED` become `allowed` evidence, `AUDIT` (would have
  been dropped, the endpoint is in audit mode) becomes `audit` evidence;
- drops with a policy drop reason become `denied` records, kept apart from
  allows (a denied flow is never turned into an allow); other drops (CT,
  routing, ...) and `TRACED` / `TRANSLATED` / `ERROR` are not policy decisions;
- L7 requests are evidence for L7 attributes; L7 responses are not.

When `is_reply` is unknown (drop events do not know it), the request
direction is decided by `request_direction`: TCP flags first (SYN without ACK
opens a connection, SYN+ACK answers), ICMP echo types, then the port pair
(a client uses an ephemeral or unprivileged source port towards a lower
service port). When none of these decide, the flow is skipped and counted
as `reply-state-unknown`, never guessed.

Values taken as evidence have length caps (`over_long`, limits below); a longer
value comes from broken or crafted input, never from Kubernetes or DNS. It is
not cut short (a shortened path would become a rule for a path nobody
requested): the whole flow is left out as `over-long-value` and counted by
kind of value.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from flowgen.cilium import NAMESPACE_LABELS_PREFIX, SERVICEACCOUNT_LABEL
from flowgen.ingest.flow import DropReason, Endpoint, EventType, Flow, L7Type, ObservationPoint, Protocol, Verdict


class Use(enum.StrEnum):
    """What a piece of evidence says about the connection."""

    ALLOWED = "allowed"
    AUDIT = "audit"
    DENIED = "denied"


class Skip(enum.StrEnum):
    """Why a flow is not evidence (each is counted and shown)."""

    REPLY = "reply"
    REPLY_UNKNOWN = "reply-state-unknown"
    DATAPATH_POINT = "datapath-point"
    SOCKET_TRACE = "socket-trace"
    NOT_A_DECISION = "not-a-policy-decision"
    NOT_POLICY_DROP = "drop-not-by-policy"
    L7_RESPONSE = "l7-response"
    NO_L4 = "no-l4-header"
    # A value longer than evidence may be (see over_long).
    OVER_LONG = "over-long-value"


class L7Kind(enum.StrEnum):
    NONE = ""
    HTTP = "http"
    GRPC = "grpc"
    DNS = "dns"
    KAFKA = "kafka"


@dataclass(frozen=True, slots=True)
class L7:
    """The L7 attribute of a request. `method` is the HTTP method or the Kafka
    api key; `path` the HTTP path without its query, the gRPC `/pkg.Service/Method`,
    the DNS name (lowercase, no trailing dot) or the Kafka topic."""

    kind: L7Kind = L7Kind.NONE
    method: str = ""
    path: str = ""
    # HTTP: the request carried a query string (policies must allow one).
    query: bool = False


NO_L7 = L7()
# The uses that are evidence for an allow.
GRANTING = frozenset({Use.ALLOWED, Use.AUDIT})

POLICY_DROPS = frozenset({DropReason.POLICY_DENIED, DropReason.POLICY_DENY, DropReason.AUTH_REQUIRED})
_USED_POINTS = frozenset({ObservationPoint.FROM_ENDPOINT, ObservationPoint.TO_ENDPOINT, ObservationPoint.UNKNOWN_POINT})
_VERDICT_USE = {Verdict.FORWARDED: Use.ALLOWED, Verdict.REDIRECTED: Use.ALLOWED, Verdict.AUDIT: Use.AUDIT}
# ICMP types that open an exchange / answer one (RFC 792, RFC 4443).
_ICMP_REQUESTS = {Protocol.ICMPv4: frozenset({8, 13, 15, 17}), Protocol.ICMPv6: frozenset({128, 130, 133, 135})}
_ICMP_ANSWERS = {Protocol.ICMPv4: frozenset({0, 14, 16, 18}), Protocol.ICMPv6: frozenset({129, 131, 134, 136})}
# Linux's default ephemeral port range starts here (net.ipv4.ip_local_port_range).
_EPHEMERAL = 32768
_PRIVILEGED = 1024
_GRPC_PATH = re.compile(r"^/[A-Za-z_][\w]*(?:\.[\w]+)*\.[A-Za-z_]\w*/[A-Za-z_]\w*$")


class TooLong(enum.StrEnum):
    """The kinds of values with a length cap (counted apart in the observe summary)."""

    PATH = "path"
    DNS_NAME = "dns-name"
    KAFKA_TOPIC = "kafka-topic"
    METHOD = "method"
    LABEL = "label"
    NAME = "name"


# The caps, in characters. Each is the most the value's own rules allow, so no real value is left out.
# HTTP path without its query (and gRPC's /pkg.Service/Method): the de-facto URL limit of browsers,
# CDNs and the sitemap protocol; Envoy takes longer ones, but a rule for a longer path is not useful.
MAX_PATH = 2048
# A DNS name without its trailing dot (RFC 1035 2.3.4: 255 octets on the wire).
MAX_DNS_NAME = 253
# A Kafka topic name (Kafka's own limit).
MAX_KAFKA_TOPIC = 249
# An HTTP method or a Kafka API key: short tokens (the longest in use have about 30 characters).
MAX_METHOD = 64
# A label key: Kubernetes' qualified name, a DNS-subdomain prefix (253), "/" and a name (63). The
# namespace's labels are checked without the io.cilium.k8s.namespace.labels. prefix Cilium adds.
MAX_LABEL_KEY = 317
# A label value (Kubernetes); the service account label holds a name, a DNS subdomain (MAX_NAME).
MAX_LABEL_VALUE = 63
# Pod, owner (workload) and service account names: DNS subdomains.
MAX_NAME = 253
# Namespace and cluster names: DNS labels (Cilium allows 32 characters for a cluster).
MAX_NAMESPACE = 63
# The observing node as Hubble names it, "cluster/node".
MAX_NODE = MAX_NAMESPACE + 1 + MAX_NAME
# Endpoints whose values all fit (see over_long), forgotten when there are this many.
_FITTING: set[Endpoint] = set()
_FITTING_LIMIT = 100_000
# The kinds of over-long L7 attributes: their peer and port had L7 requests (see GraphBuilder).
L7_VALUES = frozenset({TooLong.PATH, TooLong.DNS_NAME, TooLong.KAFKA_TOPIC, TooLong.METHOD})


def over_long(flow: Flow, attribute: L7) -> TooLong | None:
    """The kind of the first value of an evidence flow that is over its cap, None when all fit.

    Checked, in this order: both endpoints' labels, namespace, cluster, pod and owner names; the
    destination's DNS names and the observing node; then the L7 attribute (`attribute`, from
    l7_of): path, DNS query, Kafka topic, method. Values are measured, not copied (a label longer
    than a value may be is split to tell its key from its value)."""
    for endpoint in (flow.source, flow.destination):
        # Most flows repeat a few endpoints: one that fits is remembered (an exact match).
        if endpoint not in _FITTING:
            found = _endpoint_over_long(endpoint)
            if found is not None:
                return found
            if len(_FITTING) >= _FITTING_LIMIT:
                _FITTING.clear()
            _FITTING.add(endpoint)
    for name in flow.destination_names:
        if dns_name_too_long(name):
            return TooLong.DNS_NAME
    if len(flow.node_name) > MAX_NODE:
        return TooLong.NAME
    kind, value = attribute.kind, len(attribute.path)
    if kind is L7Kind.NONE:
        return None
    if value > MAX_PATH and kind in (L7Kind.HTTP, L7Kind.GRPC):
        return TooLong.PATH
    if value > MAX_DNS_NAME and kind is L7Kind.DNS:
        return TooLong.DNS_NAME
    if value > MAX_KAFKA_TOPIC and kind is L7Kind.KAFKA:
        return TooLong.KAFKA_TOPIC
    if len(attribute.method) > MAX_METHOD:
        return TooLong.METHOD
    return None


def _endpoint_over_long(endpoint: Endpoint) -> TooLong | None:
    for label in endpoint.labels:
        if len(label) > MAX_LABEL_VALUE and _label_too_long(label):
            return TooLong.LABEL
    if (
        len(endpoint.namespace) > MAX_NAMESPACE
        or len(endpoint.cluster_name) > MAX_NAMESPACE
        or len(endpoint.pod_name) > MAX_NAME
        or any(len(workload.name) > MAX_NAME for workload in endpoint.workloads)
    ):
        return TooLong.NAME
    return None


def dns_name_too_long(name: str) -> bool:
    """Whether a DNS name as Hubble writes it (maybe with its trailing dot) is over MAX_DNS_NAME."""
    return len(name) > MAX_DNS_NAME and len(name.rstrip(".")) > MAX_DNS_NAME


def _label_too_long(label: str) -> bool:
    """`source:key=value` (as identity.split_label reads it) with a key or value over its cap."""
    equals = label.find("=")
    if equals < 0:
        equals = len(label)
    if equals <= MAX_LABEL_KEY and len(label) - equals - 1 <= MAX_LABEL_VALUE:
        # Key with its source within the key cap, value within the value cap: no need to split.
        return False
    head, _, value = label.partition("=")
    key = head.partition(":")[2] if ":" in head else head
    key = key.removeprefix(NAMESPACE_LABELS_PREFIX)
    return len(key) > MAX_LABEL_KEY or len(value) > (MAX_NAME if key == SERVICEACCOUNT_LABEL else MAX_LABEL_VALUE)


def classify(flow: Flow) -> Use | Skip:
    """Whether a flow is evidence, and of what."""
    event = flow.event_type.type if flow.event_type is not None else None
    if event == EventType.TRACE_SOCK:
        return Skip.SOCKET_TRACE
    if event == EventType.TRACE and flow.observation_point not in _USED_POINTS:
        return Skip.DATAPATH_POINT
    if flow.verdict is Verdict.DROPPED:
        if flow.drop_reason not in POLICY_DROPS:
            return Skip.NOT_POLICY_DROP
        use = Use.DENIED
    elif flow.verdict in _VERDICT_USE:
        use = _VERDICT_USE[flow.verdict]
    else:
        return Skip.NOT_A_DECISION
    if flow.l7 is not None and (flow.l7.type is not L7Type.REQUEST or flow.is_reply):
        return Skip.L7_RESPONSE
    if (flow.l4 is None or flow.l4.protocol is None) and (flow.l7 is None or l7_of(flow).kind is L7Kind.NONE):
        # No protocol to write a rule for (an empty `l4`, or an L7 record of a kind flowgen does not read).
        return Skip.NO_L4
    if flow.is_reply:
        return Skip.REPLY
    if flow.is_reply is None and flow.l7 is None:
        request = request_direction(flow)
        if request is None:
            return Skip.REPLY_UNKNOWN
        if not request:
            return Skip.REPLY
    return use


def answers_dns(flow: Flow) -> bool:
    """Whether the flow is a DNS answer with addresses: it names them for the client it goes to
    (flowgen.graph.builder), and is never evidence itself (classify: an L7 response or a reply)."""
    l7 = flow.l7
    return (
        l7 is not None
        and l7.dns is not None
        and bool(l7.dns.ips)
        and (bool(flow.is_reply) or l7.type is L7Type.RESPONSE)
    )


def request_direction(flow: Flow) -> bool | None:
    """For a flow whose `is_reply` is unknown: True when it goes client -> server,
    False when it answers, None when the headers cannot tell."""
    l4 = flow.l4
    if l4 is None:
        return None
    protocol = l4.protocol
    if protocol in _ICMP_REQUESTS:
        icmp = l4.icmpv4 or l4.icmpv6
        assert icmp is not None
        if icmp.type in _ICMP_REQUESTS[protocol]:
            return True
        return False if icmp.type in _ICMP_ANSWERS[protocol] else None
    if l4.tcp is not None and l4.tcp.flags is not None and l4.tcp.flags.syn:
        return not l4.tcp.flags.ack
    ports = l4.ports
    if ports is None:
        return None
    source, destination = ports.source_port, ports.destination_port
    for low, high in ((_PRIVILEGED, _PRIVILEGED), (_EPHEMERAL, _EPHEMERAL)):
        if destination < low and source >= high:
            return True
        if source < low and destination >= high:
            return False
    return None


def l7_of(flow: Flow) -> L7:
    """The L7 attribute of a request flow (NO_L7 for L3/L4 flows)."""
    l7 = flow.l7
    if l7 is None:
        return NO_L7
    if l7.http is not None:
        http = l7.http
        path, query = split_url(http.url)
        method = http.method.upper()
        grpc = any(h.key.lower() == "content-type" and h.value.startswith("application/grpc") for h in http.headers)
        if grpc or (method == "POST" and http.protocol.upper().startswith("HTTP/2") and _GRPC_PATH.match(path)):
            return L7(L7Kind.GRPC, "POST", path)
        return L7(L7Kind.HTTP, method, path, query=query)
    if l7.dns is not None:
        return L7(L7Kind.DNS, "", dns_name(l7.dns.query))
    if l7.kafka is not None:
        return L7(L7Kind.KAFKA, l7.kafka.api_key, l7.kafka.topic)
    return NO_L7


def split_url(url: str) -> tuple[str, bool]:
    """The path of a URL as Hubble renders it (`http://host:port/path?query`, or a bare
    path), and whether it had a query (even an empty one: `/x?`). The fragment is dropped."""
    rest = url
    scheme = url.find("://")
    if scheme >= 0:
        # The authority ends at the first "/", "?" or "#".
        ends = [i for i in (url.find(c, scheme + 3) for c in "/?#") if i >= 0]
        rest = url[min(ends) :] if ends else ""
    rest = rest.split("#", 1)[0]
    path, mark, _query = rest.partition("?")
    return path or "/", bool(mark)


def dns_name(query: str) -> str:
    """A DNS name as policies write it: lowercase, without the trailing dot."""
    return query.rstrip(".").lower()
