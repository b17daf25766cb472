"""How observed values become match expressions: selectors, DNS patterns, path regexes, Kafka roles."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowgen.graph.edge import Edge
from flowgen.graph.evidence import L7, L7Kind
from flowgen.graph.folding import PLACEHOLDERS, SAMPLES, IdClass, id_class, placeholder_classes
from flowgen.graph.identity import Peer, PeerKind
from flowgen.policy.formats import regex_problem
from flowgen.policy.model import FQDNSelector, KafkaRule
from flowgen.synth.paths import Ids, Template, Wild, collapse_paths, path_regex, path_rules, path_template
from flowgen.synth.patterns import Selectors, collapse_names, kafka_rules, policy_name
from tests.builders import edge


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


# --- HTTP paths -------------------------------------------------------------------

UUID = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
HASH = "9f86d081884c7d65"
TOKEN = "Zm9vYmFyYmF6cXV4MTIz"
# Words an attacker or a bug would try where an id was seen.
WORDS = ["export", "admin", "debug", "internal", "deadbeef", "cafe", "facade", "x"]


@pytest.mark.parametrize(
    ("segment", "kind"),
    [
        pytest.param("123", IdClass.NUMBER, id="number"),
        pytest.param("0", IdClass.NUMBER, id="zero"),
        pytest.param(UUID, IdClass.UUID, id="uuid"),
        pytest.param(UUID.upper(), IdClass.UUID, id="uuid-upper"),
        pytest.param(HASH, IdClass.HEX, id="hex"),
        pytest.param("DEADBEEF1", IdClass.HEX, id="hex-upper"),
        pytest.param(TOKEN, IdClass.TOKEN, id="token"),
        pytest.param("eyJhbGciOiJIUzI1NiJ9.e30", IdClass.TOKEN, id="jwt-ish-token"),
        pytest.param("deadbeef", None, id="hex-letters-only-is-a-word"),
        pytest.param("abc123", None, id="short-mixed"),
        pytest.param("export", None, id="word"),
        pytest.param("v1", None, id="version"),
        pytest.param("internal-reports-for-2024", IdClass.TOKEN, id="long-slug-with-a-digit"),
        pytest.param("\u0663\u0663", None, id="non-ascii-digits"),
        pytest.param("a%7Cb0123456789012345678", None, id="token-with-a-raw-in-envoy-escape"),
        pytest.param("", None, id="empty"),
    ],
)
def test_segment_classes(segment: str, kind: IdClass | None) -> None:
    assert id_class(segment) is kind


@pytest.mark.parametrize(
    ("path", "regex"),
    [
        pytest.param("/api/v1/items/123", "/api/v1/items/[0-9]+", id="number"),
        pytest.param(f"/u/{UUID}", "/u/[0-9a-fA-F]+(?:-[0-9a-fA-F]+){4}", id="uuid"),
        pytest.param(f"/blob/{HASH}", "/blob/[0-9a-fA-F]*[0-9][0-9a-fA-F]*", id="hex"),
        pytest.param(f"/t/{TOKEN}", "/t/[A-Za-z0-9]*[0-9][A-Za-z0-9]*", id="token-alnum"),
        pytest.param("/t/abcdefghij-klmnopqr1", r"/t/[a-z0-9_\-]*[0-9][a-z0-9_\-]*", id="token-base64url-lower"),
        pytest.param("/users/42/orders/7", "/users/[0-9]+/orders/[0-9]+", id="two-ids"),
        pytest.param("/items", "/items", id="literal"),
    ],
)
def test_paths_become_class_regexes(path: str, regex: str) -> None:
    assert path_regex(path, folded=False, query=False) == regex


@pytest.mark.parametrize(
    ("path", "folded", "query", "matches", "refuses"),
    [
        pytest.param(
            "/api/v1/items/123",
            False,
            False,
            ["/api/v1/items/9", "/api/v1/items/123456789012"],
            ["/api/v1/items/9/x", "/api/v2/items/9", "/api/v1/items/export", "/api/v1/items/", "/api/v1/items/9a"],
            id="id",
        ),
        pytest.param(
            f"/u/{UUID}",
            False,
            False,
            ["/u/0f2504e0-4f89-11d3-9a0c-0305e82c3309", f"/u/{UUID.upper()}"],
            ["/u/", "/u/admin", "/u/123", "/u/a-b-c"],
            id="uuid",
        ),
        pytest.param(
            f"/blob/{HASH}", False, False, ["/blob/0c2b1f7e5a9d4e31", "/blob/ABCDEF12"], ["/blob/facade"], id="hex"
        ),
        pytest.param("/search", False, True, ["/search", "/search?q=x"], ["/searchx"], id="query"),
        pytest.param("/a.b+c", False, False, ["/a.b+c"], ["/aXb+c", "/a.bbc"], id="escaped-literal"),
        pytest.param("/a%7Cb", False, False, ["/a%7Cb", "/a|b"], ["/a%7Cc"], id="percent-encoded-also-raw"),
        pytest.param(
            "/api/{int}/orders", True, False, ["/api/77/orders"], ["/api/77/items", "/api/x/orders"], id="folded-int"
        ),
        pytest.param("/u/{uuid}", True, False, [f"/u/{UUID}"], ["/u/7", "/u/admin"], id="folded-uuid"),
        pytest.param("/u/{token}", True, False, [f"/u/{TOKEN}", "/u/a-b_c.d~e%20=1"], ["/u/admin"], id="folded-token"),
        pytest.param(
            "/api/{id}/orders",
            True,
            False,
            ["/api/77/orders", f"/api/{UUID}/orders", f"/api/{HASH}/orders", f"/api/{TOKEN}/orders"],
            ["/api/77/items", "/api/admin/orders", "/api/deadbeef/orders"],
            id="legacy-folded-id-is-any-id-class",
        ),
        pytest.param("/static/*", True, False, ["/static/js/app.js"], ["/other"], id="folded-prefix"),
        pytest.param("/api/{int}/orders", False, False, ["/api/{int}/orders"], ["/api/7/orders"], id="not-folded"),
    ],
)
def test_path_regex(path: str, folded: bool, query: bool, matches: list[str], refuses: list[str]) -> None:
    regex = re.compile(path_regex(path, folded=folded, query=query))
    assert all(regex.fullmatch(p) for p in matches)
    assert not any(regex.fullmatch(p) for p in refuses)


@pytest.mark.parametrize("kind", list(IdClass))
def test_placeholders_keep_the_class_and_samples_replay(kind: IdClass) -> None:
    """A folded path keeps its class in the store (`{int}`, ...), and the sample verify replays
    in its place is of that class and admitted by the regex synth makes for it."""
    assert placeholder_classes(PLACEHOLDERS[kind]) == {kind}
    assert id_class(SAMPLES[kind]) is kind
    assert re.fullmatch(path_regex(f"/x/{PLACEHOLDERS[kind]}", folded=True, query=False), f"/x/{SAMPLES[kind]}")


def _templates(*paths: str) -> dict[Template, bool]:
    """path (with `?` when a query was seen) -> template and whether a query was seen (as http_rules does)."""
    templates: dict[Template, bool] = {}
    for path in paths:
        template = path_template(path.split("?")[0])
        templates[template] = templates.get(template, False) or "?" in path
    return templates


def test_ids_of_different_classes_merge_into_their_union_and_literal_siblings_stay() -> None:
    regexes, collapsed = path_rules(_templates("/o/1", f"/o/{UUID}?x=1", "/o/export", "/o/2/lines"), 20)
    assert regexes == [
        r"/o/(?:[0-9]+|[0-9a-fA-F]+(?:-[0-9a-fA-F]+){4})(\?.*)?",
        "/o/[0-9]+/lines",
        "/o/export",
    ]
    assert collapsed == []
    merged = re.compile(regexes[0])
    assert merged.fullmatch("/o/5") and merged.fullmatch(f"/o/{UUID}?page=2")
    assert not any(merged.fullmatch(f"/o/{word}") for word in WORDS)


def test_hex_and_tokens_subsume_numbers() -> None:
    (regex,), _ = path_rules(_templates("/b/1", f"/b/{HASH}"), 20)
    assert regex == "/b/[0-9a-fA-F]*[0-9][0-9a-fA-F]*"
    (regex,), _ = path_rules(_templates("/b/1", f"/b/{HASH}", f"/b/{TOKEN}"), 20)
    assert regex == "/b/[A-Za-z0-9]*[0-9][A-Za-z0-9]*"


def test_below_the_threshold_nothing_collapses() -> None:
    paths = _templates(*(f"/shop/{word}" for word in WORDS))
    assert collapse_paths(paths, len(paths)) == (paths, [])


def test_collapsing_takes_the_narrowest_step_first() -> None:
    """30 product slugs and a few other routes past a threshold of 5: only the slugs collapse,
    into one segment; the ids beside them keep their class and other routes stay literal."""
    slugs = [f"/shop/products/item-{chr(97 + i % 26)}{chr(97 + i // 26)}" for i in range(30)]
    regexes, collapsed = path_rules(_templates(*slugs, "/shop/users/42", "/shop/users/7/cart", "/admin/x"), 5)
    assert regexes == ["/admin/x", "/shop/products/[^/]+", "/shop/users/[0-9]+", "/shop/users/[0-9]+/cart"]
    (only,) = collapsed
    assert (only.regex, only.count) == ("/shop/products/[^/]+", 30)
    assert "different literals" in only.admits


def test_collapsing_within_one_depth_keeps_classes() -> None:
    """No two templates differ in one segment only: those of one depth under one first segment
    collapse, literals that differed become `[^/]+`, ids keep the union of their classes."""
    paths = _templates(*(f"/api/r{i}/{i}/s{i}" for i in range(6)), f"/api/q/{UUID}/t", "/other/x/y/z")
    kept, collapsed = collapse_paths(paths, 2)
    assert kept == {
        ("", "api", Wild.SEGMENT, Ids(frozenset({IdClass.NUMBER, IdClass.UUID})), Wild.SEGMENT): False,
        ("", "other", "x", "y", "z"): False,
    }
    assert [(c.regex, c.count) for c in collapsed] == [
        ("/api/[^/]+/(?:[0-9]+|[0-9a-fA-F]+(?:-[0-9a-fA-F]+){4})/[^/]+", 7)
    ]


def test_collapsing_below_the_first_segment_is_the_last_resort_and_says_so() -> None:
    paths = _templates(*("/files/" + "/".join(["d"] * depth) for depth in range(1, 8)), "/files?q")
    kept, collapsed = collapse_paths(paths, 2)
    assert kept == {("", "files", Wild.BELOW): True}
    assert [(c.regex, c.count, c.admits) for c in collapsed] == [
        (r"/files(/.*)?(\?.*)?", 8, "it admits any path below /files")
    ]


def test_collapsed_ids_keep_their_union() -> None:
    templates: dict[Template, bool] = {
        ("", "a", "x", Ids(frozenset({IdClass.NUMBER}))): False,
        ("", "a", "y", Ids(frozenset({IdClass.NUMBER}))): False,
        ("", "a", "z", Ids(frozenset({IdClass.UUID}))): False,
    }
    kept, _ = collapse_paths(templates, 1)
    assert kept == {("", "a", Wild.SEGMENT, Ids(frozenset({IdClass.NUMBER, IdClass.UUID}))): False}


def test_the_first_segment_never_collapses() -> None:
    paths = _templates("/a/x", "/b/x", "/admin", "/export")
    assert collapse_paths(paths, 1) == (paths, [])


def test_empty_segments_collapse_to_an_optional_segment() -> None:
    kept, _ = collapse_paths(_templates("/a/", "/a/x", "/a/y"), 1)
    assert kept == {("", "a", Wild.SEGMENT_OR_EMPTY): False}


_PREFIXES = st.sampled_from(["/api/v1/orders", "/api/v1/users", "/blob", "/t/x"])
_IDS = st.one_of(
    st.integers(min_value=0, max_value=10**15).map(str),
    st.uuids().map(str),
    st.uuids().map(lambda u: str(u).upper()),
    st.binary(min_size=4, max_size=32).map(bytes.hex).filter(lambda h: id_class(h) is IdClass.HEX),
    st.from_regex(r"[A-Za-z0-9_-]{20,40}", fullmatch=True).filter(lambda t: id_class(t) is IdClass.TOKEN),
)
_WORDS = st.from_regex(r"[a-z]{3,12}", fullmatch=True)


@settings(max_examples=200, deadline=None)
@given(
    observed=st.lists(st.tuples(_PREFIXES, _IDS, st.booleans()), min_size=1, max_size=12),
    siblings=st.lists(st.tuples(_PREFIXES, _WORDS), max_size=4),
    probes=st.lists(_WORDS, min_size=1, max_size=8),
)
def test_observed_paths_are_admitted_and_unobserved_words_are_not(
    observed: list[tuple[str, str, bool]], siblings: list[tuple[str, str]], probes: list[str]
) -> None:
    """Ids of any class under a few prefixes, some literal siblings beside them: every observed
    path is admitted, and a word seen nowhere in that position is refused in place of any id."""
    paths = [f"{prefix}/{value}" + ("?q=1" if query else "") for prefix, value, query in observed]
    paths += [f"{prefix}/{word}" for prefix, word in siblings]
    regexes, collapsed = path_rules(_templates(*paths), 20)
    assert collapsed == []
    compiled = [re.compile(regex) for regex in regexes]
    assert all(problem is None for problem in map(regex_problem, regexes))
    for path in paths:
        assert any(regex.fullmatch(path) for regex in compiled), path
    seen = {word for _, word in siblings}
    for prefix, _, _ in observed:
        for word in set(probes) - seen:
            assert not any(regex.fullmatch(f"{prefix}/{word}") for regex in compiled), (prefix, word, regexes)


def test_class_regexes_fit_envoys_program_size() -> None:
    """Envoy refuses regexes whose RE2 program is over 100 (Cilium keeps that default): one id of
    every class at once under a typical prefix, with the query suffix, still fits."""
    import re2  # noqa: PLC0415 - google-re2, a dev dependency

    paths = _templates(f"/api/v1/orders/{UUID}?x", f"/api/v1/orders/{TOKEN}", "/api/v1/orders/1")
    (regex,), _ = path_rules(paths, 20)
    assert re2.compile(regex).programsize <= 100


KAFKA_CLIENT = workload("data", "app.kubernetes.io/name=worker")
KAFKA = workload("data", "app.kubernetes.io/name=kafka")


def _kafka(key: str, topic: str) -> Edge:
    return edge(KAFKA_CLIENT, KAFKA, port=9092, l7=L7(L7Kind.KAFKA, key, topic), flows=1)


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
