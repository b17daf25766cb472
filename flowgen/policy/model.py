"""The subset of CiliumNetworkPolicy / CiliumClusterwideNetworkPolicy that flowgen writes and reads.

Frozen values, one class per policy concept, field names in Python style
(render.py writes and parsing.py reads the camelCase YAML; the few YAML keys
they share with validation.py are at the end, with the CRD's enums). What
"absent" and "empty" mean
matters in Cilium (ref cilium-policy.md §4, §7.1, §8), so every optional
field says which it is:

- `None` means the key is absent;
- an empty tuple means the key is present with an empty list, which in
  Cilium usually means "nothing" (`fromEndpoints: []` selects no peer,
  `http: []` is no L7 rule), while a tuple holding an empty item means
  "everything" (`fromEndpoints: [{}]`, `ingress: [{}]`).

Fields flowgen does not model are kept by name in `unsupported`, so a reader
(the diff, the engine) can say what it skipped instead of guessing.
`comment` fields are for the reader of the YAML (evidence behind a rule); they
are rendered as YAML comments and never compared.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

GROUP_VERSION = "cilium.io/v2"
# Set on everything flowgen generates (metadata.labels), so a reader can tell its policies apart.
MANAGED_BY = ("app.kubernetes.io/managed-by", "flowgen")


# The Kafka api keys each role stands for (Cilium's role expansion, ref cilium-policy.md §7.4).
KAFKA_ROLE_KEYS = {
    "produce": frozenset({"produce", "metadata", "apiversions"}),
    "consume": frozenset(
        {
            "fetch",
            "offsets",
            "metadata",
            "offsetcommit",
            "offsetfetch",
            "findcoordinator",
            "joingroup",
            "heartbeat",
            "leavegroup",
            "syncgroup",
            "apiversions",
        }
    ),
}


class Kind(enum.StrEnum):
    CNP = "CiliumNetworkPolicy"
    CCNP = "CiliumClusterwideNetworkPolicy"


class Direction(enum.StrEnum):
    INGRESS = "ingress"
    EGRESS = "egress"


class L4Protocol(enum.StrEnum):
    """Values of `toPorts[].ports[].protocol` (upper case, as the CRD requires). ANY = TCP+UDP+SCTP."""

    TCP = "TCP"
    UDP = "UDP"
    SCTP = "SCTP"
    ANY = "ANY"
    VRRP = "VRRP"
    IGMP = "IGMP"


class Operator(enum.StrEnum):
    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


@dataclass(frozen=True, slots=True, order=True)
class Requirement:
    """One matchExpressions entry. `values` is empty for Exists / DoesNotExist."""

    key: str
    operator: Operator
    values: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, order=True)
class Selector:
    """A label selector. Keys keep their source prefix as written (`k8s:app`, `app`,
    `reserved:host`); a plain key means `any:`. Both tuples empty: selects everything (`{}`)."""

    match_labels: tuple[tuple[str, str], ...] = ()
    match_expressions: tuple[Requirement, ...] = ()

    @staticmethod
    def of(labels: dict[str, str]) -> Selector:
        return Selector(tuple(sorted(labels.items())))


@dataclass(frozen=True, slots=True, order=True)
class PortProtocol:
    """`port` is a decimal string ("0" or absent with ANY: every port) or an IANA port name."""

    port: str = "0"
    protocol: L4Protocol = L4Protocol.ANY
    # Inclusive range port..end_port; None for a single port.
    end_port: int | None = None


@dataclass(frozen=True, slots=True, order=True)
class HTTPRule:
    """Anchored RE2 regexes (Envoy matches the whole value); "" means the field is absent (any)."""

    method: str = ""
    path: str = ""
    host: str = ""
    # "Name: value" or "Name" (presence); exact, not regexes.
    headers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, order=True)
class FQDNSelector:
    """Exactly one of match_name / match_pattern (`*` within a label; `**.` leading, 1.19+)."""

    match_name: str = ""
    match_pattern: str = ""


@dataclass(frozen=True, slots=True, order=True)
class KafkaRule:
    """At most one of role / api_key; "" means absent. Removed in Cilium 1.20."""

    role: str = ""
    api_key: str = ""
    api_version: str = ""
    client_id: str = ""
    topic: str = ""


@dataclass(frozen=True, slots=True)
class L7Rules:
    """`toPorts[].rules`: exactly one kind is set (the CRD's oneOf)."""

    http: tuple[HTTPRule, ...] | None = None
    dns: tuple[FQDNSelector, ...] | None = None
    kafka: tuple[KafkaRule, ...] | None = None


@dataclass(frozen=True, slots=True)
class PortRule:
    """One `toPorts` entry: its ports (at most 40) and, optionally, L7 rules for all of them."""

    ports: tuple[PortProtocol, ...] = ()
    rules: L7Rules | None = None
    # Keys of the entry flowgen does not model (e.g. serverNames, listener).
    unsupported: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, order=True)
class ICMPField:
    """`type` is 0-255 or a CamelCase name (EchoRequest); family IPv4 (the default) or IPv6."""

    type: int | str
    family: str = "IPv4"


@dataclass(frozen=True, slots=True, order=True)
class CIDRRule:
    """A `*CIDRSet` entry with a prefix and optional carve-outs."""

    cidr: str
    excepts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PeerRule:
    """One entry of an ingress / egress (or deny) section. Peer fields are `from*`
    on ingress and `to*` on egress; Cilium allows one peer kind per entry."""

    endpoints: tuple[Selector, ...] | None = None
    entities: tuple[str, ...] | None = None
    cidrs: tuple[str, ...] | None = None
    cidr_sets: tuple[CIDRRule, ...] | None = None
    # Egress only.
    fqdns: tuple[FQDNSelector, ...] | None = None
    to_ports: tuple[PortRule, ...] | None = None
    # Each item is one `icmps` entry's `fields`.
    icmps: tuple[tuple[ICMPField, ...], ...] | None = None
    # Keys present but not modelled (toServices, toGroups, fromNodes, authentication, ...).
    unsupported: tuple[str, ...] = ()
    # Rendered as a YAML comment above the entry (the evidence behind it); not compared.
    comment: str = field(default="", compare=False)


@dataclass(frozen=True, slots=True)
class EnableDefaultDeny:
    """`enableDefaultDeny`; None per direction means unset (then: on when the direction has rules)."""

    ingress: bool | None = None
    egress: bool | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    """One policy rule (`spec`, or an item of `specs`). Exactly one selector is set."""

    endpoint_selector: Selector | None = None
    # CCNP host policies only.
    node_selector: Selector | None = None
    ingress: tuple[PeerRule, ...] | None = None
    egress: tuple[PeerRule, ...] | None = None
    ingress_deny: tuple[PeerRule, ...] | None = None
    egress_deny: tuple[PeerRule, ...] | None = None
    enable_default_deny: EnableDefaultDeny | None = None
    description: str = ""
    unsupported: tuple[str, ...] = ()

    def section(self, direction: Direction, *, deny: bool = False) -> tuple[PeerRule, ...] | None:
        if direction is Direction.INGRESS:
            return self.ingress_deny if deny else self.ingress
        return self.egress_deny if deny else self.egress


@dataclass(frozen=True, slots=True)
class Policy:
    """A CNP (namespaced) or CCNP (namespace ""). `specs` holds `spec` and/or `specs`
    items in order; `single` records that the document used `spec` alone."""

    kind: Kind
    name: str
    namespace: str = ""
    specs: tuple[Rule, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()
    single: bool = True
    # Comment lines rendered at the top of the document (how to regenerate it, evidence); not compared.
    header: tuple[str, ...] = field(default=(), compare=False)

    @property
    def key(self) -> tuple[str, str, str]:
        """What identifies the policy in a cluster."""
        return (self.kind.value, self.namespace, self.name)


# --- YAML keys and CRD values shared by parsing, render and validation -------

# (YAML key, direction, deny) for each section of a rule, in output order.
SECTION_KEYS = (
    ("ingress", Direction.INGRESS, False),
    ("ingressDeny", Direction.INGRESS, True),
    ("egress", Direction.EGRESS, False),
    ("egressDeny", Direction.EGRESS, True),
)
# Peer keys that depend on the direction: endpoints, entities, cidrs, cidr_sets.
PEER_KEYS = {
    Direction.INGRESS: ("fromEndpoints", "fromEntities", "fromCIDR", "fromCIDRSet"),
    Direction.EGRESS: ("toEndpoints", "toEntities", "toCIDR", "toCIDRSet"),
}

# The reader (parsing.parse) keeps a port written as a YAML integer (`port: 80`), as a string,
# and records it in PortRule.unsupported as `ports[<i>].port` + INT_PORT: the CRD's `port`
# is `type: string` (ref §1), so the API server rejects the document; validation.validate reports it.
INT_PORT = "=int"

# ICMP / ICMPv6 type names the CRD's pattern accepts besides the numbers 0-255.
ICMP_TYPE_NAMES = frozenset(
    {
        "EchoReply",
        "DestinationUnreachable",
        "Redirect",
        "Echo",
        "EchoRequest",
        "RouterAdvertisement",
        "RouterSelection",
        "RouterSolicitation",
        "TimeExceeded",
        "ParameterProblem",
        "Timestamp",
        "TimestampReply",
        "Photuris",
        "ExtendedEchoRequest",
        "PacketTooBig",
        "MulticastListenerQuery",
        "MulticastListenerReport",
        "MulticastListenerDone",
        "NeighborSolicitation",
        "NeighborAdvertisement",
        "RedirectMessage",
        "RouterRenumbering",
        "ICMPNodeInformationQuery",
        "ICMPNodeInformationResponse",
        "InverseNeighborDiscoverySolicitation",
        "InverseNeighborDiscoveryAdvertisement",
        "HomeAgentAddressDiscoveryRequest",
        "HomeAgentAddressDiscoveryReply",
        "MobilePrefixSolicitation",
        "MobilePrefixAdvertisement",
        "DuplicateAddressRequestCodeSuffix",
        "DuplicateAddressConfirmationCodeSuffix",
    }
)
