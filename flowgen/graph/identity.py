"""Workload identity: who an endpoint is, in terms that survive restarts and rollouts.

Cilium's security identity is made of the namespace plus the endpoint's
identity-relevant labels (ref cilium-policy.md §9). The numeric identity is
cluster-local and changes, so flowgen never keys on it. A flow endpoint
becomes a `Peer`:

- a pod: `WORKLOAD`, keyed by cluster, namespace and its stable labels. The
  labels Cilium's default label filter drops are dropped (Hubble has usually
  done it already), and so are labels that are identity-relevant but change
  with every rollout, Job run or chart upgrade (`job-name`, `*-hash`,
  `helm.sh/chart`, ...), so two replicas across a rollout, or a CronJob's
  runs, are one workload;
- a reserved identity: `ENTITY` (host, remote-node, kube-apiserver, health,
  ingress, init, unmanaged); `kube-apiserver` wins over host / remote-node;
- outside the cluster (`reserved:world`, CIDR and FQDN identities): `FQDN`
  when a DNS name is known for the address, else `CIDR` (a /32 or /128);
- the world identity on an endpoint that names a pod (namespace and pod
  name): `POD`. Cilium's IP cache had not learned the pod's address yet; the
  pod is resolved to the identity it has in other flows when the graph's edges
  are read (flowgen.graph.pods), never written as a CIDR (CIDR rules do not
  select pods);
- nothing usable (no labels, no reserved identity, e.g. a field-masked
  export): `UNKNOWN`, kept and reported.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from dataclasses import dataclass

from flowgen.cilium import (
    CLUSTER_LABEL,
    NAMESPACE_LABEL,
    NAMESPACE_LABELS_PREFIX,
    RESERVED,
    SERVICEACCOUNT_LABEL,
    Entity,
)
from flowgen.ingest.flow import Endpoint


class PeerKind(enum.StrEnum):
    WORKLOAD = "workload"
    ENTITY = "entity"
    FQDN = "fqdn"
    CIDR = "cidr"
    # A pod seen with the world identity: `namespace` and `name` (the pod name) say which.
    POD = "pod"
    UNKNOWN = "unknown"


# Reserved numeric identities (ref §9.2): stable across clusters, unlike the others.
# Used only when an endpoint carries no labels (field-masked exports).
_RESERVED_IDS = {
    1: Entity.HOST,
    2: Entity.WORLD,
    3: Entity.UNMANAGED,
    4: Entity.HEALTH,
    5: Entity.INIT,
    6: Entity.REMOTE_NODE,
    7: Entity.KUBE_APISERVER,
    8: Entity.INGRESS,
    9: Entity.WORLD,
    10: Entity.WORLD,
}
# The reserved identities' label names (`reserved:<name>`), and the entity each one is.
RESERVED_ENTITIES = frozenset(_RESERVED_IDS.values())
_RESERVED_LABELS = {
    **{str(entity): entity for entity in RESERVED_ENTITIES},
    "world-ipv4": Entity.WORLD,
    "world-ipv6": Entity.WORLD,
}

# Cilium's default label filter (ref §9.1, pkg/labelsfilter): patterns match at
# the start of the key; a label counts when no ignore pattern matches, or when
# the longest include match is longer than the shortest ignore match.
_INCLUDE = tuple(
    re.compile(p)
    for p in (
        r"io\.kubernetes\.pod\.namespace",
        r"io\.cilium\.k8s\.namespace\.labels",
        r"app\.kubernetes\.io",
        r"io\.cilium\.k8s\.policy\.cluster",
        r"io\.cilium\.k8s\.policy\.serviceaccount",
    )
)
_IGNORE = tuple(
    re.compile(p)
    for p in (
        r"io\.kubernetes",
        r"kubernetes\.io",
        r"statefulset\.kubernetes\.io/pod-name",
        r"apps\.kubernetes\.io/pod-index",
        r"batch\.kubernetes\.io/job-completion-index",
        r"batch\.kubernetes\.io/controller-uid",
        r".*beta\.kubernetes\.io",
        r"k8s\.io",
        r"pod-template-generation",
        r"pod-template-hash",
        r"controller-revision-hash",
        r"controller-uid",
        r"annotation.*",
        r"etcd_node",
        r"topology\.kubernetes\.io",
    )
)

# Identity-relevant to Cilium but useless for a policy that must outlive a
# rollout, a Job run or a chart upgrade (ref §9.3 step 4).
_VOLATILE = re.compile(
    r"""^(?:
        job-name | batch\.kubernetes\.io/job-name | controller-uid
      | .*-hash | .*pod-template.*
      | helm\.sh/chart | chart | heritage
      | app\.kubernetes\.io/version | version
      | security\.istio\.io/tlsMode | service\.istio\.io/.* | sidecar\.istio\.io/.* | istio\.io/rev
      | linkerd\.io/.*
    )$""",
    re.VERBOSE,
)

# Keys that are not the workload's own labels: they are fields of the Peer.
_SCOPE_KEYS = (NAMESPACE_LABEL, CLUSTER_LABEL)


def split_label(label: str) -> tuple[str, str, str]:
    """Split `source:key=value` (ref §9.3: a missing `=` means an empty value)."""
    source, _, rest = label.partition(":") if ":" in label.split("=", 1)[0] else ("", "", label)
    key, _, value = rest.partition("=")
    return source, key, value


def identity_relevant(key: str) -> bool:
    """Whether Cilium's default label filter keeps a k8s label key."""
    include = max((m.end() for p in _INCLUDE if (m := p.match(key))), default=-1)
    ignore = min((m.end() for p in _IGNORE if (m := p.match(key))), default=None)
    return ignore is None or include > ignore


def workload_labels(labels: tuple[str, ...]) -> tuple[str, ...]:
    """The labels that make a pod's workload identity: sorted `source:key=value`,
    without namespace/cluster (kept as fields), namespace labels, and volatile keys."""
    kept = []
    for label in labels:
        source, key, _value = split_label(label)
        if source not in ("k8s", "", "any", "container"):
            continue
        if key in _SCOPE_KEYS or key.startswith(NAMESPACE_LABELS_PREFIX):
            continue
        if not identity_relevant(key) or _VOLATILE.match(key):
            continue
        kept.append(label)
    return tuple(sorted(kept))


def label_value(labels: tuple[str, ...], key: str) -> str:
    for label in labels:
        _source, k, value = split_label(label)
        if k == key:
            return value
    return ""


@dataclass(frozen=True, slots=True, order=True)
class Peer:
    """One side of an edge. What `name` holds depends on `kind`: the entity
    name, the DNS name (no trailing dot), the CIDR, the pod name of a world-identity
    pod, or for a workload without labels its owner or pod name ("" for labelled
    workloads)."""

    kind: PeerKind
    cluster: str = ""
    namespace: str = ""
    # Workloads: sorted "source:key=value" labels (see workload_labels).
    labels: tuple[str, ...] = ()
    # Workloads without labels: their owner or pod name (only to tell them apart).
    name: str = ""

    @property
    def usable(self) -> bool:
        """Whether a policy selector can be built for this workload: it needs a
        label other than the service account, or a non-default service account."""
        if self.kind is not PeerKind.WORKLOAD:
            return self.kind not in (PeerKind.UNKNOWN, PeerKind.POD)
        for label in self.labels:
            _source, key, value = split_label(label)
            if key != SERVICEACCOUNT_LABEL or value != "default":
                return True
        return False

    def __str__(self) -> str:
        if self.kind is PeerKind.WORKLOAD:
            labels = ",".join(label.removeprefix("k8s:") for label in self.labels)
            return f"{self.namespace}/{{{labels}}}" if labels or not self.name else f"{self.namespace}/{self.name}"
        if self.kind is PeerKind.POD:
            return f"pod:{self.namespace}/{self.name}"
        return f"{self.kind}:{self.name}" if self.name else str(self.kind)


UNKNOWN = Peer(PeerKind.UNKNOWN)


def entity_of(endpoint: Endpoint) -> Entity | None:
    """The reserved identity of an endpoint, if it has one (labels first, then the number)."""
    found: Entity | None = None
    for label in endpoint.labels:
        if label.startswith(RESERVED):
            entity = _RESERVED_LABELS.get(split_label(label)[1])
            if entity is Entity.KUBE_APISERVER:
                return entity
            found = found or entity
    if found is None and not endpoint.labels:
        found = _RESERVED_IDS.get(endpoint.identity)
    return found


def external_peer(ip: str, name: str = "") -> Peer:
    """A peer outside the cluster: its DNS name when known, else its address as a /32 or /128."""
    if name:
        return Peer(PeerKind.FQDN, name=name.rstrip(".").lower())
    if not ip:
        return Peer(PeerKind.ENTITY, name=str(Entity.WORLD))
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return Peer(PeerKind.ENTITY, name=str(Entity.WORLD))
    return Peer(PeerKind.CIDR, name=f"{address}/{address.max_prefixlen}")


def peer_of(endpoint: Endpoint) -> Peer:
    """The peer for an endpoint inside the cluster. World endpoints come back as
    the `world` entity; the caller turns them into FQDN / CIDR peers with the
    flow's address and names (see external_peer). A world endpoint that names a
    pod (namespace and pod name) is that pod, not an outside address: `POD`."""
    entity = entity_of(endpoint)
    if entity is Entity.WORLD and endpoint.pod_name and endpoint.namespace:
        cluster = endpoint.cluster_name or label_value(endpoint.labels, CLUSTER_LABEL)
        return Peer(PeerKind.POD, cluster=cluster, namespace=endpoint.namespace, name=endpoint.pod_name)
    if entity is not None:
        return Peer(PeerKind.ENTITY, name=str(entity))
    namespace = endpoint.namespace or label_value(endpoint.labels, NAMESPACE_LABEL)
    if not namespace:
        return UNKNOWN
    cluster = endpoint.cluster_name or label_value(endpoint.labels, CLUSTER_LABEL)
    labels = workload_labels(endpoint.labels)
    # Without labels (field-masked exports) the owner or pod name keeps two workloads apart;
    # such a peer stays unusable for selectors (see Peer.usable) and is reported.
    name = "" if labels else display_name(endpoint)
    return Peer(PeerKind.WORKLOAD, cluster=cluster, namespace=namespace, labels=labels, name=name)


_POD_SUFFIX = re.compile(r"(-[0-9a-f]{8,10})?(-[0-9a-z]{5})$|-\d+$")


def display_name(endpoint: Endpoint) -> str:
    """A human name for a workload: a well-known name label, else its owner as
    Hubble reports it, else the pod name without its generated suffix."""
    for key in ("app.kubernetes.io/name", "app", "k8s-app", "name"):
        value = label_value(endpoint.labels, key)
        if value:
            return value
    return owner_name(endpoint)


def owner_name(endpoint: Endpoint) -> str:
    """The pod's owner as Hubble reports it (only for pods local to the observing node),
    else its pod name without the suffix a Deployment, Job or StatefulSet adds."""
    if endpoint.workloads:
        return endpoint.workloads[0].name
    return _POD_SUFFIX.sub("", endpoint.pod_name)
