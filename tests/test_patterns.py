"""How observed values become match expressions: selectors, DNS patterns, path regexes, Kafka roles."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from flowgen.graph.edge import Edge
from flowgen.graph.evidence import L7, L7Kind, Use
from flowgen.graph.identity import Peer, PeerKind
from flowgen.policy.model import FQDNSelector, KafkaRule
from flowgen.synth.patterns import Selectors, collapse_names, kafka_rules, path_regex, policy_name


def workload(namespace: str, *labels: str) -> Peer:
    return Peer(PeerKind.WORKLOAD, namespace=namespace, labels=tuple(sorted(f"k8s:{label}" for label in labels)))


API = workload("shop", "app.kubernetes.io/name=api", "app.kubernetes.io/component=server", "team=a")
API_WORKER = workload("shop", "app.kubernetes.io/name=api", "app.kubernetes.io/component=worker", "team=a")
LONE = workload("shop", "app=lone", "io.cilium.k8s.policy.serviceaccount=lone")
TWIN = workload("shop", "app=lone", "io.cilium.k8s.policy.serviceaccount=lone", "tier=x")
OTHER_NS = workload("data", "app.kubernetes.io/name=api", "app.kubernetes.io/component=server", "team=a")


@pytest.mark.parametrize(
    ("workloads", "subject", "selector", "ambiguous"),
    [
        pytest.param([API, LONE], API, {"app.kubernetes.io/name": "api"}, False, id="preferred-key-alone"),
        pytest.param(
            [API, API_WORKER],
            API,
            {"app.kubernetes.io/name": "api", "app.kubernetes.io/component": "server"},
            False,
            id="adds-the-next-key-when-shared",
        ),
        pytest.param([API, OTHER_NS], API, {"app.kubernetes.io/name": "api"}, False, id="other-namespaces-dont-count"),
        pytest.param(
            [LONE, TWIN],
            LONE,
            {"app": "lone", "k8s:io.cilium.k8s.policy.serviceaccount": "lone"},
            True,
            id="subset-of-another-is-ambiguous",
        ),
    ],
)
def test_smallest_distinguishing_selector(
    workloads: list[Peer], subject: Peer, selector: dict[str, str], ambiguous: bool
) -> None:
    built = Selectors.build(workloads)
    assert built.by_peer[subject] == selector
    assert (subject in built.ambiguous) is ambiguous


@pytest.mark.parametrize(
    ("names", "threshold", "expected", "collapsed"),
    [
        pytest.param(["api.stripe.com"], 10, [FQDNSelector(match_name="api.stripe.com")], {}, id="exact"),
        pytest.param(
            [f"n{i}.cdn.example.com" for i in range(4)],
            3,
            [FQDNSelector(match_pattern="*.cdn.example.com")],
            {"*.cdn.example.com": 4},
            id="collapses-past-threshold",
        ),
        pytest.param(
            [f"bucket{i}.s3.amazonaws.com" for i in range(4)],
            3,
            [FQDNSelector(match_name=f"bucket{i}.s3.amazonaws.com") for i in range(4)],
            {},
            id="never-at-a-public-suffix",
        ),
        pytest.param(
            [f"site{i}.com" for i in range(4)],
            3,
            [FQDNSelector(match_name=f"site{i}.com") for i in range(4)],
            {},
            id="never-star-dot-com",
        ),
    ],
)
def test_dns_names(names: list[str], threshold: int, expected: list[FQDNSelector], collapsed: dict[str, int]) -> None:
    assert collapse_names(names, threshold) == (expected, collapsed)


@pytest.mark.parametrize(
    ("path", "folded", "query", "matches", "refuses"),
    [
        pytest.param(
            "/api/v1/items/123", False, False, ["/api/v1/items/9"], ["/api/v1/items/9/x", "/api/v2/items/9"], id="id"
        ),
        pytest.param(
            "/u/3f2504e0-4f89-11d3-9a0c-0305e82c3301",
            False,
            False,
            ["/u/0f2504e0-4f89-11d3-9a0c-0305e82c3309"],
            ["/u/"],
            id="uuid",
        ),
        pytest.param("/search", False, True, ["/search", "/search?q=x"], ["/searchx"], id="query"),
        pytest.param("/a.b+c", False, False, ["/a.b+c"], ["/aXb+c", "/a.bbc"], id="escaped-literal"),
        pytest.param("/a%7Cb", False, False, ["/a%7Cb", "/a|b"], ["/a%7Cc"], id="percent-encoded-also-raw"),
        pytest.param("/api/{id}/orders", True, False, ["/api/77/orders"], ["/api/77/items"], id="folded-template"),
        pytest.param("/static/*", True, False, ["/static/js/app.js"], ["/other"], id="folded-prefix"),
    ],
)
def test_path_regex(path: str, folded: bool, query: bool, matches: list[str], refuses: list[str]) -> None:
    regex = re.compile(path_regex(path, folded=folded, query=query))
    assert all(regex.fullmatch(p) for p in matches)
    assert not any(regex.fullmatch(p) for p in refuses)


def _kafka(key: str, topic: str) -> Edge:
    t = datetime(2026, 11, 20, tzinfo=UTC)
    peer = Peer(PeerKind.WORKLOAD, namespace="data")
    return Edge(peer, peer, "TCP", 9092, L7(L7Kind.KAFKA, key, topic), False, Use.ALLOWED, "", 1, 1, t, t, (), "", "")


@pytest.mark.parametrize(
    ("requests", "rules"),
    [
        pytest.param(
            [("produce", "orders"), ("metadata", "orders")], [KafkaRule(role="produce", topic="orders")], id="produce"
        ),
        pytest.param(
            [("fetch", "orders"), ("joingroup", ""), ("heartbeat", "")],
            [KafkaRule(role="consume", topic="orders")],
            id="group-calls-covered-by-the-topic-rule",
        ),
        pytest.param(
            [("heartbeat", ""), ("metadata", "")],
            [KafkaRule(api_key="heartbeat"), KafkaRule(api_key="metadata")],
            id="alone-never-a-bare-role",
        ),
        pytest.param([("createtopics", "t")], [KafkaRule(api_key="createtopics", topic="t")], id="other-api-key"),
    ],
)
def test_kafka_rules(requests: list[tuple[str, str]], rules: list[KafkaRule]) -> None:
    assert list(kafka_rules([_kafka(key, topic) for key, topic in requests])) == rules


@pytest.mark.parametrize(
    ("display", "name"),
    [
        pytest.param("api", "flowgen-api", id="plain"),
        pytest.param("Payments_Worker.v2", "flowgen-payments-worker-v2", id="sanitized"),
        pytest.param("", "flowgen-workload", id="empty"),
    ],
)
def test_policy_names(display: str, name: str) -> None:
    assert policy_name(display) == name
