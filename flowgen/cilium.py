"""Cilium's vocabulary, shared by every stage: entity names, the labels Cilium gives an
identity, the DNS port, and the policy-language releases flowgen writes for.

Each of these exists here once; the stages import them rather than spell them out.
"""

from __future__ import annotations

import enum
from typing import Final


class Entity(enum.StrEnum):
    """Cilium's entities (values are the policy strings), in the order of the CRD's enum
    (ref cilium-policy.md §5.2). The reserved identities are entities too; `cluster`,
    `all` and `none` are only policy words. The agent also knows world-ipv4/world-ipv6,
    which the CRD refuses."""

    ALL = "all"
    WORLD = "world"
    CLUSTER = "cluster"
    HOST = "host"
    INIT = "init"
    INGRESS = "ingress"
    UNMANAGED = "unmanaged"
    REMOTE_NODE = "remote-node"
    HEALTH = "health"
    NONE = "none"
    KUBE_APISERVER = "kube-apiserver"


class Mode(enum.StrEnum):
    """Cilium's policy enforcement mode (agent flag enable-policy, ref §8)."""

    DEFAULT = "default"
    ALWAYS = "always"
    NEVER = "never"


# Kubernetes' own namespaces: `-A` leaves them out unless named with -n (their pods keep the
# whole cluster running, and a short observation rarely shows all they do).
SYSTEM_NAMESPACES: Final = frozenset({"kube-system", "kube-public", "kube-node-lease"})


# Labels Cilium adds to every pod's identity (ref §9.1), without their `k8s:` source.
NAMESPACE_LABEL: Final = "io.kubernetes.pod.namespace"
SERVICEACCOUNT_LABEL: Final = "io.cilium.k8s.policy.serviceaccount"
CLUSTER_LABEL: Final = "io.cilium.k8s.policy.cluster"
# Prefix of the namespace's own labels, copied onto each pod's identity.
NAMESPACE_LABELS_PREFIX: Final = "io.cilium.k8s.namespace.labels."

# The same keys as policies and Hubble write them, with their source.
K8S: Final = "k8s:"
NAMESPACE_KEY: Final = K8S + NAMESPACE_LABEL
SERVICEACCOUNT_KEY: Final = K8S + SERVICEACCOUNT_LABEL
CLUSTER_KEY: Final = K8S + CLUSTER_LABEL
NAMESPACE_LABELS_KEY_PREFIX: Final = K8S + NAMESPACE_LABELS_PREFIX
RESERVED: Final = "reserved:"

# Where the cluster DNS listens; the DNS proxy's rules name it (ref §5.5).
DNS_PORT: Final = 53

# A Cilium release as (major, minor).
Release = tuple[int, int]
DEFAULT_RELEASE: Final[Release] = (1, 19)
# The releases whose policy language flowgen writes and reads.
OLDEST_RELEASE: Final[Release] = (1, 14)
NEWEST_RELEASE: Final[Release] = (1, 20)
# Where the language changed (ref cilium-policy.md §8, §5.5, §7.4): `enableDefaultDeny` from
# 1.16, a leading `**.`
# in DNS patterns means one or more labels from 1.19, Kafka L7 rules are gone in 1.20.
DEFAULT_DENY_SWITCH: Final[Release] = (1, 16)
MULTI_LABEL_WILDCARD: Final[Release] = (1, 19)
NO_KAFKA_RULES: Final[Release] = (1, 20)
