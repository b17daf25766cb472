"""render.py: the model as Cilium YAML (field names, key order, quoting, comments), readable back and valid for the CRD.

The hypothesis strategies for valid policies live here; test_parsing.py uses them for the round trip.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowgen.cilium import Entity
from flowgen.policy.model import (
    ICMP_TYPE_NAMES,
    MANAGED_BY,
    CIDRRule,
    Direction,
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
from flowgen.policy.parsing import parse
from flowgen.policy.render import comment_lines, dump, to_document
from flowgen.policy.validation import validate
from tests.crd import crd_errors

APP = Selector.of({"app": "api"})
TCP = L4Protocol.TCP


def cnp(*rules: Rule, **fields: object) -> Policy:
    return Policy(Kind.CNP, "api", "prod", specs=rules, **fields)


def egress(*peers: PeerRule) -> Rule:
    return Rule(endpoint_selector=APP, egress=peers)


def ports(*numbers: str, protocol: L4Protocol = TCP, rules: L7Rules | None = None) -> tuple[PortRule, ...]:
    return (PortRule(tuple(PortProtocol(n, protocol) for n in numbers), rules),)


# --- to_document: one concept per row ----------------------------------------------------------

RULES = [
    pytest.param(
        Rule(endpoint_selector=Selector(), ingress=(PeerRule(),)),
        {"endpointSelector": {}, "ingress": [{}]},
        id="default-deny-ingress",
    ),
    pytest.param(
        Rule(
            endpoint_selector=Selector(
                (("app", "api"), ("k8s:io.kubernetes.pod.namespace", "prod")),
                (
                    Requirement("k8s:tier", Operator.IN, ("web", "api")),
                    Requirement("canary", Operator.DOES_NOT_EXIST),
                ),
            ),
            egress=(PeerRule(endpoints=(Selector.of({"k8s:app": "db"}), Selector())),),
        ),
        {
            "endpointSelector": {
                "matchLabels": {"app": "api", "k8s:io.kubernetes.pod.namespace": "prod"},
                "matchExpressions": [
                    {"key": "k8s:tier", "operator": "In", "values": ["web", "api"]},
                    {"key": "canary", "operator": "DoesNotExist"},
                ],
            },
            "egress": [{"toEndpoints": [{"matchLabels": {"k8s:app": "db"}}, {}]}],
        },
        id="selectors-prefixed-plain-expressions-empty",
    ),
    pytest.param(
        Rule(endpoint_selector=APP, ingress=(PeerRule(endpoints=()),), egress=()),
        {"endpointSelector": {"matchLabels": {"app": "api"}}, "ingress": [{"fromEndpoints": []}], "egress": []},
        id="empty-lists-stay",
    ),
    pytest.param(
        Rule(
            endpoint_selector=APP,
            ingress=(PeerRule(entities=("world", "remote-node")),),
            egress=(PeerRule(entities=("kube-apiserver",)),),
        ),
        {
            "endpointSelector": {"matchLabels": {"app": "api"}},
            "ingress": [{"fromEntities": ["world", "remote-node"]}],
            "egress": [{"toEntities": ["kube-apiserver"]}],
        },
        id="entities",
    ),
    pytest.param(
        Rule(
            endpoint_selector=APP,
            ingress=(PeerRule(cidrs=("192.0.2.1/32",)),),
            egress=(PeerRule(cidr_sets=(CIDRRule("10.0.0.0/8", ("10.1.0.0/16", "10.2.0.0/16")), CIDRRule("::/0"))),),
        ),
        {
            "endpointSelector": {"matchLabels": {"app": "api"}},
            "ingress": [{"fromCIDR": ["192.0.2.1/32"]}],
            "egress": [
                {"toCIDRSet": [{"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16", "10.2.0.0/16"]}, {"cidr": "::/0"}]}
            ],
        },
        id="cidr-and-cidr-set-with-except",
    ),
    pytest.param(
        egress(
            PeerRule(
                fqdns=(FQDNSelector("api.stripe.com"), FQDNSelector(match_pattern="*.s3.amazonaws.com")),
                to_ports=(PortRule((PortProtocol("443", TCP), PortProtocol("8000", TCP, end_port=8099))),),
            )
        ),
        {
            "endpointSelector": {"matchLabels": {"app": "api"}},
            "egress": [
                {
                    "toFQDNs": [{"matchName": "api.stripe.com"}, {"matchPattern": "*.s3.amazonaws.com"}],
                    "toPorts": [
                        {
                            "ports": [
                                {"port": "443", "protocol": "TCP"},
                                {"port": "8000", "protocol": "TCP", "endPort": 8099},
                            ]
                        }
                    ],
                }
            ],
        },
        id="fqdns-and-port-range",
    ),
    pytest.param(
        Rule(
            endpoint_selector=APP,
            ingress=(
                PeerRule(
                    to_ports=ports(
                        "8080",
                        rules=L7Rules(
                            http=(
                                HTTPRule("GET", r"/api/v1/users(\?.*)?", r"api\.example\.com", ("X-Env: prod",)),
                                HTTPRule(),
                            )
                        ),
                    )
                ),
            ),
        ),
        {
            "endpointSelector": {"matchLabels": {"app": "api"}},
            "ingress": [
                {
                    "toPorts": [
                        {
                            "ports": [{"port": "8080", "protocol": "TCP"}],
                            "rules": {
                                "http": [
                                    {
                                        "method": "GET",
                                        "path": r"/api/v1/users(\?.*)?",
                                        "host": r"api\.example\.com",
                                        "headers": ["X-Env: prod"],
                                    },
                                    {},
                                ]
                            },
                        }
                    ]
                }
            ],
        },
        id="http",
    ),
    pytest.param(
        egress(
            PeerRule(
                endpoints=(Selector.of({"k8s:k8s-app": "kube-dns"}),),
                to_ports=ports(
                    "53",
                    protocol=L4Protocol.ANY,
                    rules=L7Rules(dns=(FQDNSelector("api.stripe.com"), FQDNSelector(match_pattern="**.svc"))),
                ),
            )
        ),
        {
            "endpointSelector": {"matchLabels": {"app": "api"}},
            "egress": [
                {
                    "toEndpoints": [{"matchLabels": {"k8s:k8s-app": "kube-dns"}}],
                    "toPorts": [
                        {
                            "ports": [{"port": "53", "protocol": "ANY"}],
                            "rules": {"dns": [{"matchName": "api.stripe.com"}, {"matchPattern": "**.svc"}]},
                        }
                    ],
                }
            ],
        },
        id="dns",
    ),
    pytest.param(
        egress(
            PeerRule(
                to_ports=ports(
                    "9092",
                    rules=L7Rules(
                        kafka=(KafkaRule(role="produce", topic="orders"), KafkaRule(api_key="fetch", client_id="c1"))
                    ),
                )
            )
        ),
        {
            "endpointSelector": {"matchLabels": {"app": "api"}},
            "egress": [
                {
                    "toPorts": [
                        {
                            "ports": [{"port": "9092", "protocol": "TCP"}],
                            "rules": {
                                "kafka": [{"role": "produce", "topic": "orders"}, {"apiKey": "fetch", "clientID": "c1"}]
                            },
                        }
                    ]
                }
            ],
        },
        id="kafka",
    ),
    pytest.param(
        egress(PeerRule(entities=("world",), icmps=((ICMPField(8), ICMPField("EchoRequest", "IPv6")),))),
        {
            "endpointSelector": {"matchLabels": {"app": "api"}},
            "egress": [
                {
                    "toEntities": ["world"],
                    "icmps": [{"fields": [{"type": 8, "family": "IPv4"}, {"type": "EchoRequest", "family": "IPv6"}]}],
                }
            ],
        },
        id="icmp",
    ),
    pytest.param(
        Rule(
            endpoint_selector=Selector(),
            enable_default_deny=EnableDefaultDeny(ingress=False, egress=False),
            description="DNS visibility",
            egress=(PeerRule(to_ports=ports("53", protocol=L4Protocol.UDP)),),
        ),
        {
            "description": "DNS visibility",
            "endpointSelector": {},
            "enableDefaultDeny": {"ingress": False, "egress": False},
            "egress": [{"toPorts": [{"ports": [{"port": "53", "protocol": "UDP"}]}]}],
        },
        id="enable-default-deny-and-description",
    ),
    pytest.param(
        Rule(
            endpoint_selector=APP,
            ingress_deny=(PeerRule(entities=("world",), to_ports=ports("22")),),
            egress_deny=(PeerRule(cidrs=("169.254.169.254/32",)),),
        ),
        {
            "endpointSelector": {"matchLabels": {"app": "api"}},
            "ingressDeny": [{"fromEntities": ["world"], "toPorts": [{"ports": [{"port": "22", "protocol": "TCP"}]}]}],
            "egressDeny": [{"toCIDR": ["169.254.169.254/32"]}],
        },
        id="deny-sections",
    ),
]


@pytest.mark.parametrize(("rule", "expected"), RULES)
def test_to_document_rule(rule: Rule, expected: dict[str, object]) -> None:
    document = to_document(cnp(rule))
    assert document["spec"] == expected
    assert list(document["spec"]) == list(expected)


def test_rule_keys_come_in_a_fixed_order() -> None:
    rule = Rule(
        endpoint_selector=APP,
        egress_deny=(PeerRule(),),
        egress=(PeerRule(),),
        ingress_deny=(PeerRule(),),
        ingress=(PeerRule(),),
        enable_default_deny=EnableDefaultDeny(egress=True),
        description="d",
    )
    assert list(to_document(cnp(rule))["spec"]) == [
        "description",
        "endpointSelector",
        "enableDefaultDeny",
        "ingress",
        "ingressDeny",
        "egress",
        "egressDeny",
    ]


def test_peer_keys_come_in_a_fixed_order() -> None:
    peer = PeerRule(
        icmps=((ICMPField(0),),),
        to_ports=(),
        fqdns=(),
        cidr_sets=(),
        cidrs=(),
        entities=(),
        endpoints=(),
    )
    spec = to_document(cnp(egress(peer)))["spec"]
    assert list(spec["egress"][0]) == [
        "toEndpoints",
        "toEntities",
        "toCIDR",
        "toCIDRSet",
        "toFQDNs",
        "toPorts",
        "icmps",
    ]


def test_document_metadata_and_specs() -> None:
    policy = cnp(
        egress(PeerRule()),
        Rule(endpoint_selector=APP, ingress=(PeerRule(),)),
        labels=(MANAGED_BY,),
        annotations=(("flowgen.io/source", "flows.jsonl"),),
    )
    document = to_document(policy)
    assert list(document) == ["apiVersion", "kind", "metadata", "specs"]
    assert document["metadata"] == {
        "name": "api",
        "namespace": "prod",
        "labels": {"app.kubernetes.io/managed-by": "flowgen"},
        "annotations": {"flowgen.io/source": "flows.jsonl"},
    }
    assert document["specs"] == [
        {"endpointSelector": {"matchLabels": {"app": "api"}}, "egress": [{}]},
        {"endpointSelector": {"matchLabels": {"app": "api"}}, "ingress": [{}]},
    ]


def test_clusterwide_policy_has_no_namespace_and_empty_metadata_is_left_out() -> None:
    policy = Policy(Kind.CCNP, "health", specs=(Rule(node_selector=Selector(), ingress=(PeerRule(),)),))
    assert to_document(policy) == {
        "apiVersion": "cilium.io/v2",
        "kind": "CiliumClusterwideNetworkPolicy",
        "metadata": {"name": "health"},
        "spec": {"nodeSelector": {}, "ingress": [{}]},
    }


@pytest.mark.parametrize(
    ("single", "rules", "key"),
    [
        pytest.param(True, 1, "spec", id="single-rule"),
        pytest.param(False, 1, "specs", id="one-rule-written-as-specs"),
        pytest.param(True, 2, "specs", id="several-rules"),
        pytest.param(False, 0, "specs", id="no-rules-as-empty-specs"),
    ],
)
def test_spec_or_specs(single: bool, rules: int, key: str) -> None:
    policy = cnp(*[egress(PeerRule())] * rules, single=single)
    assert key in to_document(policy)


def test_policy_without_rules_and_single_has_neither_spec_nor_specs() -> None:
    assert list(to_document(cnp())) == ["apiVersion", "kind", "metadata"]


# --- dump: exact text -----------------------------------------------------------------------------


def test_dump_exact_text() -> None:
    policy = cnp(
        Rule(
            endpoint_selector=APP,
            ingress=(
                PeerRule(
                    endpoints=(Selector.of({"app": "web"}),),
                    to_ports=ports("8080"),
                    comment="web -> api: 12 flows\nfirst seen 2026-11-20T09:00:00Z",
                ),
            ),
            egress=(PeerRule(entities=("kube-apiserver",), to_ports=ports("443")), PeerRule(comment="nothing")),
        ),
        labels=(MANAGED_BY,),
        header=("Generated by flowgen: flowgen generate -n prod", ""),
    )
    assert dump([policy, policy]) == (
        "# Generated by flowgen: flowgen generate -n prod\n"
        "#\n"
        "apiVersion: cilium.io/v2\n"
        "kind: CiliumNetworkPolicy\n"
        "metadata:\n"
        "  name: api\n"
        "  namespace: prod\n"
        "  labels:\n"
        "    app.kubernetes.io/managed-by: flowgen\n"
        "spec:\n"
        "  endpointSelector:\n"
        "    matchLabels:\n"
        "      app: api\n"
        "  ingress:\n"
        "  # web -> api: 12 flows\n"
        "  # first seen 2026-11-20T09:00:00Z\n"
        "  - fromEndpoints:\n"
        "    - matchLabels:\n"
        "        app: web\n"
        "    toPorts:\n"
        "    - ports:\n"
        '      - port: "8080"\n'
        "        protocol: TCP\n"
        "  egress:\n"
        "  - toEntities:\n"
        "    - kube-apiserver\n"
        "    toPorts:\n"
        "    - ports:\n"
        '      - port: "443"\n'
        "        protocol: TCP\n"
        "  # nothing\n"
        "  - {}\n"
        "---\n"
        "# Generated by flowgen: flowgen generate -n prod\n"
        "#\n"
        "apiVersion: cilium.io/v2\n"
        "kind: CiliumNetworkPolicy\n"
        "metadata:\n"
        "  name: api\n"
        "  namespace: prod\n"
        "  labels:\n"
        "    app.kubernetes.io/managed-by: flowgen\n"
        "spec:\n"
        "  endpointSelector:\n"
        "    matchLabels:\n"
        "      app: api\n"
        "  ingress:\n"
        "  # web -> api: 12 flows\n"
        "  # first seen 2026-11-20T09:00:00Z\n"
        "  - fromEndpoints:\n"
        "    - matchLabels:\n"
        "        app: web\n"
        "    toPorts:\n"
        "    - ports:\n"
        '      - port: "8080"\n'
        "        protocol: TCP\n"
        "  egress:\n"
        "  - toEntities:\n"
        "    - kube-apiserver\n"
        "    toPorts:\n"
        "    - ports:\n"
        '      - port: "443"\n'
        "        protocol: TCP\n"
        "  # nothing\n"
        "  - {}\n"
    )


def test_dump_of_nothing_is_empty() -> None:
    assert dump([]) == ""


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        pytest.param("a\nb", ["# a", "# b"], id="newline"),
        pytest.param("a\r\nb\rc", ["# a", "# b", "# c"], id="carriage-returns"),
        pytest.param("a\x85b\u2028c\u2029d", ["# a", "# b", "# c", "# d"], id="yaml-1.1-line-breaks"),
        pytest.param("x\x00y\x1b[31m\t", ["# x\\x00y\\x1b[31m\\t"], id="control-characters-escaped"),
        pytest.param("café ☕", ["# caf\\xe9 \\u2615"], id="non-ascii-escaped"),
        pytest.param("", ["#"], id="empty"),
    ],
)
def test_comment_lines(text: str, lines: list[str]) -> None:
    assert comment_lines(text) == lines


# Strings that a YAML reader (PyYAML, or go-yaml v2 behind kubectl) could take for something else.
TRICKY = ["y", "n", "Y", "on", "Off", "yes", "no", "true", "null", "1e5", "0o17", "0x1F", "1_000", "010", "12", "1.5"]


@pytest.mark.parametrize("value", TRICKY)
def test_ambiguous_strings_are_double_quoted(value: str) -> None:
    text = dump([cnp(Rule(endpoint_selector=Selector.of({"app": value}), ingress=(PeerRule(),)))])
    assert f'app: "{value}"' in text
    assert parse(text, "x.yaml").policies[0].specs[0].endpoint_selector == Selector.of({"app": value})


def test_hostile_content_stays_inside_its_scalar_or_comment() -> None:
    evil = "x\n---\nkind: Deployment\n# \u2028- evil: 1 #"
    policy = cnp(
        Rule(
            endpoint_selector=APP,
            description=evil,
            egress=(
                PeerRule(
                    to_ports=ports("80", rules=L7Rules(http=(HTTPRule(path=re.escape(evil)),))),
                    comment=evil,
                ),
            ),
        ),
        annotations=(("note", evil),),
        header=(evil,),
    )
    text = dump([policy])
    assert text.count("\n---\n") == 0
    assert not [line for line in text.splitlines() if line.lstrip().startswith("kind: Deployment")]
    assert [line.lstrip() for line in text.splitlines() if "kind: Deployment" in line and line.lstrip()[0] == "#"] == [
        "# kind: Deployment",
        "# kind: Deployment",
    ]
    assert text.isascii()
    parsed = parse(text, "x.yaml")
    assert parsed.policies == [policy]
    assert parsed.skipped == []


def test_long_regexes_are_not_folded() -> None:
    path = "/" + "/".join(["segment with spaces"] * 20)
    text = dump([cnp(egress(PeerRule(to_ports=ports("80", rules=L7Rules(http=(HTTPRule(path=path),))))))])
    assert f"        - path: {path}" in text.splitlines()


# --- Strategies for valid policies ---------------------------------------------------------------

_NAME = r"[a-z0-9](?:[-a-z0-9]{0,10}[a-z0-9])?"
names = st.from_regex(rf"\A{_NAME}\Z")
label_values = st.one_of(
    st.sampled_from([t for t in TRICKY if not t.startswith(".")]),
    st.from_regex(r"\A(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,8}[A-Za-z0-9])?)?\Z"),
)
label_names = st.one_of(st.sampled_from(TRICKY), st.from_regex(r"\A[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,8}[A-Za-z0-9])?\Z"))
label_keys = st.builds(
    lambda source, prefix, name: f"{source}{prefix}{name}",
    st.sampled_from(["", "k8s:", "any:", "reserved:"]),
    st.sampled_from(["", "app.kubernetes.io/", "io.cilium.k8s.namespace.labels."]),
    label_names,
)
metadata_keys = st.builds(lambda p, n: p + n, st.sampled_from(["", "app.kubernetes.io/", "example.com/"]), label_names)
free_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=25)


def pairs(
    keys: st.SearchStrategy[str], values: st.SearchStrategy[str]
) -> st.SearchStrategy[tuple[tuple[str, str], ...]]:
    return st.dictionaries(keys, values, max_size=3).map(lambda d: tuple(d.items()))


requirements = st.one_of(
    st.builds(
        Requirement,
        label_keys,
        st.sampled_from([Operator.IN, Operator.NOT_IN]),
        st.lists(label_values, min_size=1, max_size=3).map(tuple),
    ),
    st.builds(Requirement, label_keys, st.sampled_from([Operator.EXISTS, Operator.DOES_NOT_EXIST])),
)
selectors = st.builds(Selector, pairs(label_keys, label_values), st.lists(requirements, max_size=2).map(tuple))


@st.composite
def networks(draw: st.DrawFn) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    address = draw(st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)))
    return ipaddress.ip_network(f"{address}/{draw(st.integers(0, address.max_prefixlen))}", strict=False)


@st.composite
def cidr_rules(draw: st.DrawFn) -> CIDRRule:
    network = draw(networks())
    excepts = []
    for _ in range(draw(st.integers(0, 2))):
        address = network.network_address + draw(st.integers(0, network.num_addresses - 1))
        length = draw(st.integers(network.prefixlen, network.max_prefixlen))
        excepts.append(str(ipaddress.ip_network(f"{address}/{length}", strict=False)))
    return CIDRRule(str(network), tuple(excepts))


dns_names = st.from_regex(rf"\A{_NAME}(?:\.{_NAME}){{0,3}}\.?\Z")
dns_patterns = st.one_of(
    st.sampled_from(["*", "*.example.com", "**.example.com", "api-*.example.com", "*.*.svc.cluster.local"]),
    dns_names.map(lambda n: "*." + n),
)
fqdn_selectors = st.one_of(
    dns_names.map(lambda n: FQDNSelector(match_name=n)), dns_patterns.map(lambda p: FQDNSelector(match_pattern=p))
)
numbers = st.integers(1, 65535).map(str)
port_names = st.sampled_from(["http", "https", "dns-tcp", "grpc", "metrics", "0x50"])


@st.composite
def port_protocols(draw: st.DrawFn, protocols: tuple[L4Protocol, ...], *, ranges: bool) -> PortProtocol:
    port = draw(st.one_of(numbers, port_names))
    end = draw(st.none() | st.integers(int(port), 65535)) if ranges and port.isdecimal() else None
    return PortProtocol(port, draw(st.sampled_from(protocols)), end)


http_rules = st.builds(
    HTTPRule,
    method=st.sampled_from(["", "GET", "POST", "GET|HEAD"]),
    path=st.one_of(st.sampled_from(["", "/", r"/api/v1/users(\?.*)?", "/pkg\\.Svc/.*"]), free_text.map(re.escape)),
    host=st.sampled_from(["", r"api\.example\.com(:[0-9]+)?"]),
    headers=st.lists(st.sampled_from(["X-Token", "X-Env: prod"]), max_size=2, unique=True).map(tuple),
)
kafka_rules = st.one_of(
    st.builds(
        KafkaRule, role=st.sampled_from(["", "produce", "consume"]), topic=st.from_regex(r"\A[a-z0-9._-]{0,12}\Z")
    ),
    st.builds(
        KafkaRule,
        api_key=st.sampled_from(["fetch", "metadata", "Produce"]),
        api_version=st.sampled_from(["", "0", "12"]),
        client_id=st.sampled_from(["", "client-1"]),
    ),
)
PLAIN = (L4Protocol.TCP, L4Protocol.UDP, L4Protocol.SCTP, L4Protocol.ANY)


@st.composite
def port_rules(draw: st.DrawFn, l7: tuple[str, ...]) -> PortRule:
    kind = draw(st.sampled_from(("", *l7)))
    if kind == "":
        return PortRule(tuple(draw(st.lists(port_protocols(PLAIN, ranges=True), max_size=3))))
    if kind == "dns":
        dns_ports = st.builds(
            PortProtocol,
            st.sampled_from(["53", "5353"]),
            st.sampled_from([L4Protocol.UDP, L4Protocol.TCP, L4Protocol.ANY]),
        )
        return PortRule(
            tuple(draw(st.lists(dns_ports, min_size=1, max_size=2))),
            L7Rules(dns=tuple(draw(st.lists(fqdn_selectors, max_size=3)))),
        )
    tcp = tuple(draw(st.lists(port_protocols((TCP,), ranges=True), min_size=1, max_size=2)))
    if kind == "http":
        return PortRule(tcp, L7Rules(http=tuple(draw(st.lists(http_rules, max_size=2)))))
    return PortRule(tcp, L7Rules(kafka=tuple(draw(st.lists(kafka_rules, max_size=2)))))


icmp_fields = st.builds(
    ICMPField,
    st.one_of(st.integers(0, 255), st.sampled_from(sorted(ICMP_TYPE_NAMES)), st.integers(0, 255).map(str)),
    st.sampled_from(["IPv4", "IPv6"]),
)


@st.composite
def peer_rules(draw: st.DrawFn, direction: Direction, *, deny: bool, host: bool, kafka: bool) -> PeerRule:
    egress_allow = direction is Direction.EGRESS and not deny
    peer = draw(
        st.sampled_from(["", "endpoints", "entities", "cidrs", "cidr_sets", "fqdns"][: 6 if egress_allow else 5])
    )
    values: dict[str, object] = {}
    if peer == "endpoints":
        values["endpoints"] = tuple(draw(st.lists(selectors, max_size=2)))
    elif peer == "entities":
        values["entities"] = tuple(draw(st.lists(st.sampled_from([str(e) for e in Entity]), max_size=3)))
    elif peer == "cidrs":
        values["cidrs"] = tuple(str(n) for n in draw(st.lists(networks(), max_size=2)))
    elif peer == "cidr_sets":
        values["cidr_sets"] = tuple(draw(st.lists(cidr_rules(), max_size=2)))
    elif peer == "fqdns":
        values["fqdns"] = tuple(draw(st.lists(fqdn_selectors, max_size=2)))
    l7: tuple[str, ...] = ()
    if not deny and not host:
        l7 = ("http", *(("dns",) if egress_allow else ()), *(("kafka",) if kafka else ()))
    elif host and egress_allow:
        l7 = ("dns",)
    layer4 = draw(st.sampled_from(["", "ports", "ports", "icmps"]))
    if layer4 == "ports":
        values["to_ports"] = tuple(draw(st.lists(port_rules(l7), min_size=1, max_size=2)))
    elif layer4 == "icmps":
        values["icmps"] = tuple(tuple(f) for f in draw(st.lists(st.lists(icmp_fields, max_size=3), max_size=2)))
    return PeerRule(**values, comment=draw(free_text))


def sections(
    direction: Direction, *, deny: bool, host: bool, kafka: bool
) -> st.SearchStrategy[tuple[PeerRule, ...] | None]:
    peers = peer_rules(direction, deny=deny, host=host, kafka=kafka)
    return st.none() | st.lists(peers, max_size=3).map(tuple)


DNS_RULE = PeerRule(
    endpoints=(Selector.of({"k8s:io.kubernetes.pod.namespace": "kube-system", "k8s:k8s-app": "kube-dns"}),),
    to_ports=ports("53", protocol=L4Protocol.ANY, rules=L7Rules(dns=(FQDNSelector(match_pattern="*"),))),
)


@st.composite
def rules(draw: st.DrawFn, kind: Kind, *, kafka: bool) -> Rule:
    host = kind is Kind.CCNP and draw(st.booleans())
    subject = draw(selectors)
    values: dict[str, object] = {
        "ingress": draw(sections(Direction.INGRESS, deny=False, host=host, kafka=kafka)),
        "ingress_deny": draw(sections(Direction.INGRESS, deny=True, host=host, kafka=kafka)),
        "egress": draw(sections(Direction.EGRESS, deny=False, host=host, kafka=kafka)),
        "egress_deny": draw(sections(Direction.EGRESS, deny=True, host=host, kafka=kafka)),
    }
    if not any(values.values()):
        values["ingress"] = (PeerRule(),)
    return Rule(
        endpoint_selector=None if host else subject,
        node_selector=subject if host else None,
        enable_default_deny=draw(
            st.none() | st.builds(EnableDefaultDeny, st.none() | st.booleans(), st.none() | st.booleans())
        ),
        description=draw(free_text),
        **values,
    )


def _needs_dns(rule: Rule) -> bool:
    return any(peer.fqdns for peer in rule.egress or ())


@st.composite
def policies(draw: st.DrawFn, *, kafka: bool = True) -> Policy:
    kind = draw(st.sampled_from(Kind))
    specs = draw(st.lists(rules(kind, kafka=kafka), min_size=1, max_size=2))
    if any(_needs_dns(r) for r in specs):
        # checklist 6: a toFQDNs rule comes with a DNS rule in the same policy.
        first = specs[0]
        specs[0] = dataclasses.replace(first, egress=(*(first.egress or ()), DNS_RULE), node_selector=None)
        if first.node_selector is not None:
            specs[0] = dataclasses.replace(specs[0], endpoint_selector=first.node_selector)
    return Policy(
        kind=kind,
        name=draw(st.from_regex(rf"\A{_NAME}(?:\.{_NAME})?\Z")),
        namespace=draw(names) if kind is Kind.CNP else "",
        specs=tuple(specs),
        labels=draw(pairs(metadata_keys, label_values)),
        annotations=draw(pairs(metadata_keys, free_text)),
        single=len(specs) == 1 and draw(st.booleans()),
        header=tuple(draw(st.lists(free_text, max_size=2))),
    )


PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _has_kafka(policy: Policy) -> bool:
    return any(
        port_rule.rules is not None and port_rule.rules.kafka is not None
        for rule in policy.specs
        for section in (rule.ingress, rule.egress)
        for peer in section or ()
        for port_rule in peer.to_ports or ()
    )


@PROPERTY
@given(policies())
def test_generated_policies_are_valid_for_flowgen_and_the_crd(policy: Policy) -> None:
    assert validate(policy) == []
    document = to_document(policy)
    assert crd_errors(document, policy.kind, "1.19") == []
    if not _has_kafka(policy):
        assert crd_errors(document, policy.kind, "1.20") == []
    # What the API server reads is the YAML, not the dict: the same checks pass on the parsed text.
    (reread,) = yaml.safe_load_all(dump([policy]))
    assert reread == document


def _spec(**fields: object) -> dict[str, object]:
    return {
        "apiVersion": "cilium.io/v2",
        "kind": "CiliumNetworkPolicy",
        "metadata": {"name": "api", "namespace": "prod"},
        "spec": {"endpointSelector": {}, **fields},
    }


@pytest.mark.parametrize(
    ("document", "release", "error"),
    [
        pytest.param(_spec(description="d", ingress=[{}]), "1.19", None, id="valid"),
        pytest.param(
            _spec(ingress=[{"toPorts": [{"ports": [{"port": 80}]}]}]),
            "1.19",
            "spec.ingress.0.toPorts.0.ports.0.port: 80 is not of type 'string'",
            id="integer-port",
        ),
        pytest.param(
            _spec(ingress=[{"fromEndpoint": [{}]}]),
            "1.19",
            "spec.ingress.0: Additional properties are not allowed ('fromEndpoint' was unexpected)",
            id="typo-closed-object",
        ),
        pytest.param(
            _spec(egress=[{"toCIDR": ["10.0.0.1"]}]),
            "1.19",
            "spec.egress.0.toCIDR.0: '10.0.0.1' is not a 'cidr'",
            id="cidr",
        ),
        pytest.param(
            _spec(egress=[{"toEntities": ["world-ipv4"]}]),
            "1.19",
            "spec.egress.0.toEntities.0: 'world-ipv4' is not one of",
            id="entity",
        ),
        pytest.param(
            _spec(egress=[{"toPorts": [{"ports": [{"port": "9092", "protocol": "TCP"}], "rules": {"kafka": [{}]}}]}]),
            "1.20",
            "spec.egress.0.toPorts.0.rules",
            id="kafka-gone-in-1.20",
        ),
        pytest.param(
            {"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy", "metadata": {"name": "a"}},
            "1.20",
            "<root>: spec or specs must be provided",
            id="cel-spec-or-specs",
        ),
    ],
)
def test_crd_helper_catches_what_the_api_server_rejects(
    document: dict[str, object], release: str, error: str | None
) -> None:
    errors = crd_errors(document, "CiliumNetworkPolicy", release)
    if error is None:
        assert errors == []
    else:
        assert any(e.startswith(error) for e in errors), errors


# --- parse ---------------------------------------------------------------------------------------
