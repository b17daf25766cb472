"""The vocabulary of match expressions: how observed values become what a rule matches.

- workload selectors: the smallest stable label set that tells a workload apart
  from the other observed workloads of its namespace (ref cilium-policy.md §9.3);
- DNS names: exact names, collapsed to `*.parent` past a threshold but never at
  a public suffix (the Public Suffix List decides, via publicsuffixlist);
- HTTP paths: anchored RE2 regexes with id-like segments generalized, literal
  parts escaped, and the query string allowed when one was seen (§7.2);
- Kafka: roles (produce / consume) for the api keys they cover, per topic (§7.4);
- policy names: `flowgen-<workload>` as DNS labels.

Pure functions of values; synth.py decides where each applies.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import unquote

from publicsuffixlist import PublicSuffixList

from flowgen.cilium import SERVICEACCOUNT_LABEL
from flowgen.graph.edge import Edge
from flowgen.graph.folding import ID_PLACEHOLDER, REST_PLACEHOLDER, is_id_segment
from flowgen.graph.identity import Peer, split_label
from flowgen.policy.model import KAFKA_ROLE_KEYS, FQDNSelector, KafkaRule

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
# Characters Hubble shows percent-encoded in a path while Envoy matches them raw (ref hubble-api.md §7).
_ENCODED_BY_HUBBLE = frozenset("|^{}\\ ")
_PERCENT_RUN = re.compile(r"(?:%[0-9A-Fa-f]{2})+")
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
    workloads of its namespace (greedy over the preferred keys)."""

    by_peer: dict[Peer, dict[str, str]] = field(default_factory=dict)
    ambiguous: set[Peer] = field(default_factory=set)

    @staticmethod
    def build(workloads: Iterable[Peer]) -> Selectors:
        result = Selectors()
        by_namespace: dict[tuple[str, str], list[Peer]] = defaultdict(list)
        for peer in sorted(set(workloads)):
            by_namespace[(peer.cluster, peer.namespace)].append(peer)
        for peers in by_namespace.values():
            labelled = {p: _labels(p) for p in peers}
            for peer, labels in labelled.items():
                others = [other for o, other in labelled.items() if o != peer]
                chosen: dict[str, str] = {}
                for key in _ordered_keys(labels):
                    chosen[key] = labels[key][1]
                    if not any(_matches(chosen, other) for other in others):
                        break
                else:
                    # Every label used and another workload still matches: its labels are a superset.
                    if any(_matches(chosen, other) for other in others):
                        result.ambiguous.add(peer)
                result.by_peer[peer] = {
                    _selector_key(key, labels[key][0]): value for key, value in sorted(chosen.items())
                }
        return result


def _labels(peer: Peer) -> dict[str, tuple[str, str]]:
    """key -> (source, value) of a workload's labels."""
    result = {}
    for label in peer.labels:
        source, key, value = split_label(label)
        result[key] = (source, value)
    return result


def _ordered_keys(labels: dict[str, tuple[str, str]]) -> list[str]:
    preferred = [key for key in _PREFERRED if key in labels]
    rest = sorted(key for key in labels if key not in _PREFERRED and key != SERVICEACCOUNT_LABEL)
    last = [SERVICEACCOUNT_LABEL] if SERVICEACCOUNT_LABEL in labels else []
    return preferred + rest + last


def _matches(chosen: dict[str, str], labels: dict[str, tuple[str, str]]) -> bool:
    return all(key in labels and labels[key][1] == value for key, value in chosen.items())


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


# ---------------------------------------------------------------------------
# HTTP paths


def _literal(segment: str) -> str:
    """A path segment as an RE2 literal; characters Hubble shows percent-encoded
    also match in their raw form, because Envoy matches the raw path."""
    out, last = [], 0
    for match in _PERCENT_RUN.finditer(segment):
        out.append(re.escape(segment[last : match.start()]))
        encoded = match.group(0)
        decoded = unquote(encoded)
        if decoded != encoded and (any(c in _ENCODED_BY_HUBBLE for c in decoded) or not decoded.isascii()):
            out.append(f"(?:{re.escape(encoded)}|{re.escape(decoded)})")
        else:
            out.append(re.escape(encoded))
        last = match.end()
    out.append(re.escape(segment[last:]))
    return "".join(out)


def path_regex(path: str, *, folded: bool, query: bool) -> str:
    """An anchored path regex for an observed (or folded) path: id-like segments
    become `[^/]+`, literal parts are escaped, and `(\\?.*)?` is added when a query
    string was seen (Envoy matches the path with its query, ref §7.2)."""
    segments = path.split("/")
    parts = []
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if (folded and segment == ID_PLACEHOLDER) or is_id_segment(segment):
            parts.append("[^/]+")
        elif folded and last and segment == REST_PLACEHOLDER:
            parts.append(".*")
        else:
            parts.append(_literal(segment))
    regex = "/".join(parts)
    return regex + (r"(\?.*)?" if query else "")


def collapse_paths(paths: dict[str, bool], threshold: int) -> tuple[dict[str, bool], dict[str, int]]:
    """path regex -> query seen. Past `threshold` distinct regexes, regexes sharing a
    first segment collapse into `/<segment>(/.*)?`; returns the collapsed prefixes too."""
    if len(paths) <= threshold:
        return paths, {}
    groups: dict[str, list[str]] = defaultdict(list)
    for regex in paths:
        groups[regex.lstrip("/").split("/", 1)[0]].append(regex)
    result: dict[str, bool] = {}
    collapsed: dict[str, int] = {}
    for first, members in groups.items():
        if len(members) > 1 and first and first != "[^/]+":
            regex = f"/{first}(/.*)?" + (r"(\?.*)?" if any(paths[m] for m in members) else "")
            result[regex] = False
            collapsed[regex] = len(members)
        else:
            result.update({m: paths[m] for m in members})
    return result, collapsed


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
