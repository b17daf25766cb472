"""The offline policy engine, one Cilium semantic per row (ref cilium-policy.md §3-§8)."""

from __future__ import annotations

import pytest

from flowgen.check.engine import Engine, L7Request, Party, Request, fqdn_matches
from flowgen.cilium import Mode
from flowgen.graph.evidence import L7Kind
from flowgen.ingest.flow import Protocol
from flowgen.policy.model import (
    CIDRRule,
    EnableDefaultDeny,
    FQDNSelector,
    HTTPRule,
    ICMPField,
    KafkaRule,
    Kind,
    L4Protocol,
    L7Rules,
    Operator,
    PeerRule,
    Policy,
    PortProtocol,
    PortRule,
    Requirement,
    Rule,
    Selector,
)

NS = "k8s:io.kubernetes.pod.namespace"


def pod(namespace: str, app: str, **extra: str) -> Party:
    labels = {"k8s:app": app, NS: namespace, "k8s:io.cilium.k8s.policy.serviceaccount": app}
    labels.update({f"k8s:{k}": v for k, v in extra.items()})
    return Party(tuple(sorted(labels.items())))


def world(ip: str = "52.1.2.3", *names: str) -> Party:
    return Party(ip=ip, names=names, world=True)


HOST = Party((("reserved:host", ""),))
FRONT = pod("shop", "frontend")
API = pod("shop", "api")
PROM = pod("monitoring", "prometheus")


def tcp(port: int, **l7: str) -> PortRule:
    return PortRule((PortProtocol(str(port), L4Protocol.TCP),))


def cnp(namespace: str, subject: dict[str, str], *, name: str = "p", **sections: tuple[PeerRule, ...]) -> Policy:
    return Policy(Kind.CNP, name, namespace, (Rule(endpoint_selector=Selector.of(subject), **sections),))


def ccnp(subject: dict[str, str], *, name: str = "c", **sections: object) -> Policy:
    return Policy(Kind.CCNP, name, "", (Rule(endpoint_selector=Selector.of(subject), **sections),))  # type: ignore[arg-type]


def allows(policies: list[Policy], request: Request, **engine: object) -> bool:
    return Engine(policies, **engine).decide(request).allowed  # type: ignore[arg-type]


def req(source: Party, destination: Party, port: int = 8080, protocol: str = "TCP", **l7: str) -> Request:
    kind = L7Kind(l7.pop("kind", ""))
    return Request(source, destination, Protocol(protocol), port, L7Request(kind, **l7))


API_FROM_FRONTEND = cnp(
    "shop", {"app": "api"}, ingress=(PeerRule(endpoints=(Selector.of({"app": "frontend"}),), to_ports=(tcp(8080),)),)
)


@pytest.mark.parametrize(
    ("policies", "request_", "expected"),
    [
        pytest.param([], req(FRONT, API), True, id="no-policy-default-mode-allows"),
        pytest.param([API_FROM_FRONTEND], req(FRONT, API), True, id="allowed-peer-and-port"),
        pytest.param([API_FROM_FRONTEND], req(FRONT, API, 9090), False, id="other-port"),
        pytest.param([API_FROM_FRONTEND], req(PROM, API), False, id="other-peer"),
        pytest.param([API_FROM_FRONTEND], req(pod("other", "frontend"), API), False, id="same-labels-other-namespace"),
        pytest.param(
            [cnp("shop", {"app": "api"}, ingress=(PeerRule(),))], req(FRONT, API), False, id="ingress-[{}]-denies-all"
        ),
        pytest.param(
            [cnp("shop", {"app": "api"}, ingress=())], req(FRONT, API), True, id="ingress-[]-does-not-switch-deny"
        ),
        pytest.param(
            [cnp("shop", {}, ingress=(PeerRule(endpoints=(Selector(),)),))],
            req(FRONT, API),
            True,
            id="empty-selector-is-my-namespace",
        ),
        pytest.param(
            [cnp("shop", {}, ingress=(PeerRule(endpoints=(Selector(),)),))],
            req(PROM, API),
            False,
            id="empty-selector-not-other-namespace",
        ),
        pytest.param(
            [
                cnp(
                    "shop",
                    {"app": "api"},
                    ingress=(PeerRule(endpoints=(Selector.of({NS: "monitoring", "app": "prometheus"}),)),),
                )
            ],
            req(PROM, API, 9090),
            True,
            id="cross-namespace-peer",
        ),
        pytest.param(
            [
                cnp(
                    "shop",
                    {"app": "api"},
                    ingress=(
                        PeerRule(
                            endpoints=(
                                Selector(
                                    (("app", "prometheus"),),
                                    (Requirement(NS, Operator.IN, ("monitoring", "ops")),),
                                ),
                            )
                        ),
                    ),
                )
            ],
            req(PROM, API),
            True,
            id="match-expressions-in",
        ),
        pytest.param(
            [cnp("shop", {"app": "api"}, ingress=(PeerRule(endpoints=(Selector.of({"any:app": "frontend"}),)),))],
            req(FRONT, API),
            True,
            id="any-prefix-matches-k8s-label",
        ),
        pytest.param(
            [cnp("shop", {"app": "api"}, ingress=(PeerRule(endpoints=(Selector.of({"container:app": "frontend"}),)),))],
            req(FRONT, API),
            False,
            id="other-source-prefix-does-not",
        ),
        pytest.param(
            [cnp("shop", {"app": "api"}, ingress=(PeerRule(to_ports=(tcp(8080),)),))],
            req(world(), API),
            True,
            id="ports-only-is-l3-wildcard",
        ),
        pytest.param(
            [
                cnp(
                    "shop",
                    {"app": "api"},
                    ingress=(PeerRule(endpoints=(Selector.of({"k8s:io.cilium.k8s.namespace.labels.team": "obs"}),)),),
                )
            ],
            req(pod("monitoring", "prometheus", **{"io.cilium.k8s.namespace.labels.team": "obs"}), API),
            True,
            id="namespace-label-selector-crosses-namespaces",
        ),
        pytest.param(
            [cnp("shop", {"app": "api"}, ingress=(PeerRule(entities=("world",), to_ports=(tcp(8080),)),))],
            req(world(), API),
            True,
            id="world-entity",
        ),
        pytest.param(
            [cnp("shop", {"app": "api"}, ingress=(PeerRule(entities=("cluster",)),))],
            req(FRONT, API),
            True,
            id="cluster-entity-has-pods",
        ),
        pytest.param(
            [cnp("shop", {"app": "api"}, ingress=(PeerRule(entities=("cluster",)),))],
            req(world(), API),
            False,
            id="cluster-entity-not-world",
        ),
        pytest.param(
            [cnp("shop", {"app": "api"}, ingress=(PeerRule(),))],
            req(HOST, API),
            True,
            id="allow-localhost-lets-probes-in",
        ),
        pytest.param(
            [
                cnp(
                    "shop",
                    {"app": "frontend"},
                    egress=(PeerRule(cidr_sets=(CIDRRule("52.0.0.0/8", ("52.1.0.0/16",)),)),),
                )
            ],
            req(FRONT, world("52.1.2.3"), 443),
            False,
            id="cidr-except",
        ),
        pytest.param(
            [
                cnp(
                    "shop",
                    {"app": "frontend"},
                    egress=(PeerRule(cidr_sets=(CIDRRule("52.0.0.0/8", ("52.1.0.0/16",)),)),),
                )
            ],
            req(FRONT, world("52.2.2.3"), 443),
            True,
            id="cidr-outside-except",
        ),
        pytest.param(
            [cnp("shop", {"app": "frontend"}, egress=(PeerRule(cidrs=("10.0.0.0/8",)),))],
            req(FRONT, API),
            False,
            id="cidr-never-matches-pods",
        ),
        pytest.param(
            [cnp("shop", {"app": "frontend"}, egress=(PeerRule(fqdns=(FQDNSelector(match_pattern="*.stripe.com"),)),))],
            req(FRONT, world("52.1.2.3", "api.stripe.com"), 443),
            True,
            id="fqdn-pattern",
        ),
        pytest.param(
            [cnp("shop", {"app": "frontend"}, egress=(PeerRule(fqdns=(FQDNSelector(match_pattern="*.stripe.com"),)),))],
            req(FRONT, world("52.1.2.3", "stripe.com"), 443),
            False,
            id="fqdn-star-needs-a-label",
        ),
        pytest.param(
            [
                cnp(
                    "shop",
                    {"app": "api"},
                    ingress=(
                        PeerRule(
                            to_ports=(
                                PortRule(
                                    (PortProtocol("8080", L4Protocol.TCP),),
                                    L7Rules(http=(HTTPRule(method="GET", path=r"/api/v1/items/[^/]+(\?.*)?"),)),
                                ),
                            )
                        ),
                    ),
                )
            ],
            req(FRONT, API, kind="http", method="GET", path="/api/v1/items/7?lang=en"),
            True,
            id="http-path-with-query",
        ),
        pytest.param(
            [
                cnp(
                    "shop",
                    {"app": "api"},
                    ingress=(
                        PeerRule(
                            to_ports=(
                                PortRule(
                                    (PortProtocol("8080", L4Protocol.TCP),),
                                    L7Rules(http=(HTTPRule(method="GET", path="/api/health"),)),
                                ),
                            )
                        ),
                    ),
                )
            ],
            req(FRONT, API, kind="http", method="GET", path="/api/health?x=1"),
            False,
            id="http-path-without-query-part-refuses-a-query",
        ),
        pytest.param(
            [
                cnp(
                    "shop",
                    {"app": "api"},
                    ingress=(
                        PeerRule(
                            to_ports=(
                                PortRule(
                                    (PortProtocol("8080", L4Protocol.TCP),),
                                    L7Rules(http=(HTTPRule(method="GET", path="/status"),)),
                                ),
                            )
                        ),
                    ),
                )
            ],
            req(FRONT, API, kind="http", method="GET", path="/status/200"),
            False,
            id="http-path-is-anchored",
        ),
        pytest.param(
            [
                cnp(
                    "data",
                    {"app": "kafka"},
                    ingress=(
                        PeerRule(
                            to_ports=(
                                PortRule(
                                    (PortProtocol("9092", L4Protocol.TCP),),
                                    L7Rules(kafka=(KafkaRule(role="consume", topic="orders"),)),
                                ),
                            )
                        ),
                    ),
                )
            ],
            req(FRONT, pod("data", "kafka"), 9092, kind="kafka", method="heartbeat", topic=""),
            True,
            id="kafka-consume-role-expands-to-heartbeat",
        ),
        pytest.param(
            [
                cnp(
                    "data",
                    {"app": "kafka"},
                    ingress=(
                        PeerRule(
                            to_ports=(
                                PortRule(
                                    (PortProtocol("9092", L4Protocol.TCP),),
                                    L7Rules(kafka=(KafkaRule(role="consume", topic="orders"),)),
                                ),
                            )
                        ),
                    ),
                )
            ],
            req(FRONT, pod("data", "kafka"), 9092, kind="kafka", method="produce", topic="orders"),
            False,
            id="kafka-consume-role-is-not-produce",
        ),
        pytest.param(
            [
                cnp("shop", {"app": "api"}, ingress=(PeerRule(endpoints=(Selector.of({"app": "frontend"}),)),)),
                cnp(
                    "shop",
                    {"app": "api"},
                    name="deny",
                    ingress_deny=(PeerRule(endpoints=(Selector.of({"app": "frontend"}),), to_ports=(tcp(8080),)),),
                ),
            ],
            req(FRONT, API),
            False,
            id="deny-wins-over-allow",
        ),
        pytest.param(
            [
                ccnp({}, ingress=(PeerRule(entities=("host",)),), enable_default_deny=EnableDefaultDeny(False, False)),
            ],
            req(FRONT, API),
            True,
            id="ccnp-with-default-deny-off-does-not-lock",
        ),
        pytest.param(
            [
                ccnp({"k8s:app": "api"}, ingress=(PeerRule(endpoints=(Selector.of({"app": "prometheus"}),)),)),
                API_FROM_FRONTEND,
            ],
            req(PROM, API),
            True,
            id="ccnp-and-cnp-union",
        ),
        pytest.param(
            [ccnp({"k8s:app": "api"}, ingress=(PeerRule(endpoints=(Selector(),)),))],
            req(HOST, API, 9999),
            True,
            id="ccnp-empty-peer-is-pods-but-localhost-allowed",
        ),
        pytest.param(
            [cnp("shop", {"app": "api"}, ingress=(PeerRule(icmps=((ICMPField(8),),)),))],
            req(FRONT, API, 8, "ICMPv4"),
            True,
            id="icmp-echo",
        ),
        pytest.param(
            [cnp("shop", {"app": "api"}, ingress=(PeerRule(icmps=((ICMPField("EchoRequest"),),)),))],
            req(FRONT, API, 8080),
            False,
            id="icmp-rule-is-not-tcp",
        ),
        pytest.param(
            [
                cnp(
                    "shop",
                    {"app": "api"},
                    ingress=(PeerRule(to_ports=(PortRule((PortProtocol("8000", L4Protocol.TCP, 8100),)),)),),
                )
            ],
            req(FRONT, API, 8080),
            True,
            id="port-range",
        ),
        pytest.param(
            [
                cnp(
                    "shop",
                    {"app": "api"},
                    ingress=(PeerRule(to_ports=(PortRule((PortProtocol("0", L4Protocol.ANY),)),)),),
                )
            ],
            req(FRONT, API, 5000, "UDP"),
            True,
            id="port-0-any",
        ),
    ],
)
def test_engine(policies: list[Policy], request_: Request, expected: bool) -> None:
    assert allows(policies, request_) is expected


def test_egress_and_ingress_must_both_allow() -> None:
    frontend_egress = cnp("shop", {"app": "frontend"}, egress=(PeerRule(endpoints=(Selector.of({"app": "db"}),)),))
    decision = Engine([frontend_egress, API_FROM_FRONTEND]).decide(req(FRONT, API))
    assert decision.ingress.allowed and not decision.egress.allowed
    assert decision.ingress.allowed_by == ("CiliumNetworkPolicy/shop/p ingress[0]",)


def test_always_mode_enforces_unselected_endpoints() -> None:
    assert allows([], req(FRONT, API), mode=Mode.ALWAYS) is False
    assert allows([], req(FRONT, API), mode=Mode.NEVER) is True


def test_l7_port_passes_connections_without_detail() -> None:
    policy = cnp(
        "shop",
        {"app": "api"},
        ingress=(
            PeerRule(
                to_ports=(PortRule((PortProtocol("8080", L4Protocol.TCP),), L7Rules(http=(HTTPRule(method="GET"),))),)
            ),
        ),
    )
    decision = Engine([policy]).decide(req(FRONT, API))
    assert decision.allowed and decision.ingress.l7_unchecked


def test_unmodelled_keys_are_reported() -> None:
    policy = cnp("shop", {"app": "frontend"}, egress=(PeerRule(unsupported=("toServices",)),))
    engine = Engine([policy])
    assert not engine.decide(req(FRONT, API)).allowed
    assert engine.warnings == {"CiliumNetworkPolicy/shop/p: toServices not modelled; that rule matches nothing"}


@pytest.mark.parametrize(
    ("selector", "name", "version", "expected"),
    [
        pytest.param(FQDNSelector(match_name="api.stripe.com"), "API.Stripe.com.", (1, 19), True, id="name-case-dot"),
        pytest.param(FQDNSelector(match_pattern="*.cilium.io"), "a.b.cilium.io", (1, 19), False, id="star-one-label"),
        pytest.param(FQDNSelector(match_pattern="*cilium.io"), "subcilium.io", (1, 19), True, id="star-in-label"),
        pytest.param(FQDNSelector(match_pattern="**.cilium.io"), "a.b.cilium.io", (1, 19), True, id="double-star-1.19"),
        pytest.param(
            FQDNSelector(match_pattern="**.cilium.io"), "cilium.io", (1, 19), False, id="double-star-needs-one"
        ),
        pytest.param(
            FQDNSelector(match_pattern="**.cilium.io"), "a.b.cilium.io", (1, 18), False, id="double-star-1.18"
        ),
        pytest.param(FQDNSelector(match_pattern="*"), "anything.example", (1, 19), True, id="all-stars"),
    ],
)
def test_fqdn_matching(selector: FQDNSelector, name: str, version: tuple[int, int], expected: bool) -> None:
    assert fqdn_matches(selector, name, version) is expected
