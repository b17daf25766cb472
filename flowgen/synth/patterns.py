"""The vocabulary of match expressions: how observed values become what a rule matches.

- workload selectors: the smallest stable label set that tells a workload apart
  from the other observed workloads of its namespace (ref cilium-policy.md §9.3);
- DNS names: exact names, collapsed to `*.parent` past a threshold but never at
  a public suffix (the Public Suffix List decides, via publicsuffixlist);
- HTTP paths: see flowgen.synth.paths;
- Kafka: roles (produce / consume) for the api keys they cover, per topic (§7.4);
- policy names: `flowgen-<workload>` as DNS labels.

Pure functions of values; synth.py decides where each applies.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from publicsuffixlist import PublicSuffixList

from flowgen.cilium import SERVICEACCOUNT_LABEL
from flowgen.graph.edge import Edge
from flowgen.graph.identity import Peer, split_label
from flowgen.policy.formats import label_value_problem, qualified_name_problem
from flowgen.policy.model import KAFKA_ROLE_KEYS, FQDNSelector, KafkaRule, Operator, Requirement, Selector

_PSL = PublicSuffixList()
# Preferred selector keys (ref §9.3 step 5), then the other labels, then the service account.
_PREFERRED: tuple[str, ...] = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/component",
    "app",
    "k8s-app",
    "name",
    "component",
)
# Kafka api keys covered by a role (ref §7.4).
_PRODUCE = frozenset({"produce"})
_CONSUME = frozenset({"fetch", "offsets", "offsetcommit", "offsetfetch", "findcoordinator", "joingroup"})
_CONSUME |= frozenset({"heartbeat", "leavegroup", "syncgroup"})
_NAME_CHARS = re.compile(r"[^a-z0-9-]+")


# ---------------------------------------------------------------------------
# Selectors


def _selector_key(label_key: str, source: str) -> str:
    """Plain keys for the pod's own labels (they mean any:, which matches k8s:),
    k8s:-prefixed keys for the ones Cilium injects, as Cilium's examples write them."""
    if label_key.startswith("io.cilium.k8s.") or source not in ("k8s", ""):
        return f"{source or 'k8s'}:{label_key}"
    return label_key


@dataclass(slots=True)
class Selectors:
    """The smallest stable label set that selects each workload among the observed
    workloads of its namespace (greedy over the preferred keys). A workload whose labels
    are all carried by another observed workload too (`ambiguous`) is told apart by
    `DoesNotExist` expressions on a label each of those others has (`exclusions`)."""

    by_peer: dict[Peer, dict[str, str]] = field(default_factory=dict)
    ambiguous: set[Peer] = field(default_factory=set)
    exclusions: dict[Peer, tuple[Requirement, ...]] = field(default_factory=dict)
    # Labels a selector cannot carry (a key or value Kubernetes rejects), per workload.
    unusable: dict[Peer, tuple[str, ...]] = field(default_factory=dict)

    def selector(self, peer: Peer, extra: dict[str, str] | None = None) -> Selector:
        """The selector of an observed workload, with `extra` labels (a namespace) added."""
        labels = {**self.by_peer.get(peer, {}), **(extra or {})}
        return Selector(tuple(sorted(labels.items())), self.exclusions.get(peer, ()))

    @staticmethod
    def build(workloads: Iterable[Peer]) -> Selectors:
        result = Selectors()
        by_namespace: dict[tuple[str, str], list[Peer]] = defaultdict(list)
        for peer in sorted(set(workloads)):
            by_namespace[(peer.cluster, peer.namespace)].append(peer)
        for peers in by_namespace.values():
            labelled = {p: _labels(p) for p in peers}
            # Which workloads of the namespace carry each label (key, value): the workloads a
            # selector still matches are the intersection of its labels' sets, so each workload
            # costs the size of the sets it narrows, not the size of the namespace.
            carriers: dict[tuple[str, str], set[Peer]] = defaultdict(set)
            for peer, labels in labelled.items():
                for key, (_source, value) in labels.items():
                    carriers[(key, value)].add(peer)
            for peer in peers:
                left_out = tuple(label for label in peer.labels if split_label(label)[1] not in labelled[peer])
                if left_out:
                    result.unusable[peer] = left_out
            for peer, labels in labelled.items():
                chosen: dict[str, str] = {}
                # The workloads the chosen labels match (`peer` among them), None before the first label.
                matched: set[Peer] | None = None
                for key in _ordered_keys(labels):
                    chosen[key] = labels[key][1]
                    carrying = carriers[(key, chosen[key])]
                    matched = carrying if matched is None else matched & carrying
                    if len(matched) == 1:
                        break
                else:
                    # Every label used and other workloads still match: their labels are a superset.
                    # (No label at all: every other workload of the namespace matches.)
                    wider = [labelled[other] for other in (peers if matched is None else matched) if other != peer]
                    if wider:
                        result.ambiguous.add(peer)
                        result.exclusions[peer] = _excluding(labels, wider)
                result.by_peer[peer] = {
                    _selector_key(key, labels[key][0]): value for key, value in sorted(chosen.items())
                }
        return result


def _excluding(labels: dict[str, tuple[str, str]], wider: list[dict[str, tuple[str, str]]]) -> tuple[Requirement, ...]:
    """`DoesNotExist` on one label key (the first in selector order) of each wider workload
    that `labels` lacks: the selector then matches none of them."""
    excluded = set()
    for other in wider:
        key = next((k for k in _ordered_keys(other) if k not in labels), None)
        if key is not None:
            excluded.add(_selector_key(key, other[key][0]))
    return tuple(Requirement(key, Operator.DOES_NOT_EXIST) for key in sorted(excluded))


def _labels(peer: Peer) -> dict[str, tuple[str, str]]:
    """key -> (source, value) of a workload's labels a selector can name (a key or value
    Kubernetes would reject is left out: a selector with it would be refused)."""
    result = {}
    for label in peer.labels:
        source, key, value = split_label(label)
        if not (qualified_name_problem(key) or label_value_problem(value)):
            result[key] = (source, value)
    return result


def _ordered_keys(labels: dict[str, tuple[str, str]]) -> list[str]:
    preferred = [key for key in _PREFERRED if key in labels]
    rest = sorted(key for key in labels if key not in _PREFERRED and key != SERVICEACCOUNT_LABEL)
    last = [SERVICEACCOUNT_LABEL] if SERVICEACCOUNT_LABEL in labels else []
    return preferred + rest + last


# ---------------------------------------------------------------------------
# Names


def collapse_names(names: Iterable[str], threshold: int) -> tuple[list[FQDNSelector], dict[str, int]]:
    """Exact names as matchName; past `threshold` names under one parent, that parent
    as `*.parent` (never at a public suffix). Returns the selectors and the collapsed
    patterns with how many names each replaced."""
    unique = sorted(set(names))
    by_parent: dict[str, list[str]] = defaultdict(list)
    for name in unique:
        _first, _, parent = name.partition(".")
        by_parent[parent].append(name)
    selectors: list[FQDNSelector] = []
    collapsed: dict[str, int] = {}
    for parent, members in sorted(by_parent.items()):
        if len(members) > threshold and "." in parent and not _PSL.is_public(parent):
            pattern = f"*.{parent}"
            selectors.append(FQDNSelector(match_pattern=pattern))
            collapsed[pattern] = len(members)
        else:
            selectors.extend(FQDNSelector(match_name=name) for name in members)
    return sorted(selectors), collapsed


def policy_name(display: str) -> str:
    """`flowgen-<workload>` as a DNS-1123 subdomain label."""
    cleaned = _NAME_CHARS.sub("-", display.lower()).strip("-") or "workload"
    return f"flowgen-{cleaned}"[:253].rstrip("-")


def kafka_rules(edges: list[Edge]) -> tuple[KafkaRule, ...]:
    """Per topic, the role whose data calls were observed (produce; fetch and the consumer
    calls for consume); every other request must be covered by such a role rule (metadata
    for that topic, or a call that names no topic, since Cilium checks topics only for
    requests that carry them), else it becomes an api-key rule, never a bare role
    (which would allow every topic)."""
    role_topics: dict[str, set[str]] = {"produce": set(), "consume": set()}
    others: set[tuple[str, str]] = set()
    for edge in edges:
        key, topic = edge.l7.method.lower(), edge.l7.path
        role = "produce" if key in _PRODUCE else "consume" if key in _CONSUME else ""
        if role and topic:
            role_topics[role].add(topic)
        else:
            others.add((key, topic))
    rules = {KafkaRule(role=role, topic=topic) for role, topics in role_topics.items() for topic in topics}
    for key, topic in others:
        covered = any(
            key in KAFKA_ROLE_KEYS[role] and (topic in topics if topic else bool(topics))
            for role, topics in role_topics.items()
        )
        if not covered:
            rules.add(KafkaRule(api_key=key, topic=topic))
    return tuple(sorted(rules))
