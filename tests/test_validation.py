"""validation.validate: one row per thing the API server or the Cilium agent rejects, message word for word."""

from __future__ import annotations

import pytest

from flowgen.policy.model import (
    MANAGED_BY,
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
from flowgen.policy.validation import validate

APP = Selector.of({"app": "api"})
TCP, UDP, ANY = L4Protocol.TCP, L4Protocol.UDP, L4Protocol.ANY
NAME = "CiliumNetworkPolicy prod/api"
E0 = f"{NAME}: spec.egress[0]"
I0 = f"{NAME}: spec.ingress[0]"
DNS = PeerRule(
    endpoints=(Selector.of({"k8s:io.kubernetes.pod.namespace": "kube-system", "k8s:k8s-app": "kube-dns"}),),
    to_ports=(PortRule((PortProtocol("53", ANY),), L7Rules(dns=(FQDNSelector(match_pattern="*"),))),),
)


def cnp(*rules: Rule, **fields: object) -> Policy:
    return Policy(Kind.CNP, "api", "prod", specs=rules, **fields)


def egress(*peers: PeerRule, **fields: object) -> Policy:
    return cnp(Rule(endpoint_selector=APP, egress=peers, **fields))


def ingress(*peers: PeerRule, **fields: object) -> Policy:
    return cnp(Rule(endpoint_selector=APP, ingress=peers, **fields))


def on(*ports: PortProtocol, rules: L7Rules | None = None, **peer: object) -> PeerRule:
    return PeerRule(to_ports=(PortRule(ports, rules),), **peer)


def tcp(port: str, end: int | None = None) -> PortProtocol:
    return PortProtocol(port, TCP, end)


def http(*rules: HTTPRule) -> L7Rules:
    return L7Rules(http=rules)


def dns(*selectors: FQDNSelector) -> L7Rules:
    return L7Rules(dns=selectors)


VALID = Policy(
    Kind.CNP,
    "api",
    "prod",
    labels=(MANAGED_BY,),
    specs=(
        Rule(
            endpoint_selector=Selector(
                (("app.kubernetes.io/name", "api"),), (Requirement("k8s:tier", Operator.IN, ("web",)),)
            ),
            ingress=(
                on(
                    tcp("8080"),
                    rules=http(HTTPRule("GET", r"/api/v1/users(\?.*)?", r"api\.example\.com(:[0-9]+)?", ("X-Env",))),
                    endpoints=(Selector.of({"app": "web", "k8s:io.kubernetes.pod.namespace": "web"}),),
                ),
                PeerRule(entities=("remote-node", "health"), icmps=((ICMPField(8), ICMPField("EchoRequest", "IPv6")),)),
            ),
            egress=(
                DNS,
                on(tcp("443"), PortProtocol("8000", TCP, 8099), fqdns=(FQDNSelector(match_pattern="**.stripe.com"),)),
                on(PortProtocol("http-alt", ANY), cidr_sets=(CIDRRule("10.0.0.0/8", ("10.1.0.0/16",)),)),
                on(tcp("9092"), rules=L7Rules(kafka=(KafkaRule(role="produce", topic="orders"),))),
                PeerRule(cidrs=("2001:db8::/32",)),
            ),
            egress_deny=(PeerRule(cidrs=("169.254.169.254/32",)),),
            enable_default_deny=EnableDefaultDeny(ingress=True),
        ),
    ),
)


def test_a_valid_policy_has_no_problems() -> None:
    assert validate(VALID) == []


def _with_int_port() -> Policy:
    return egress(PeerRule(to_ports=(PortRule((tcp("80"), tcp("8080")), unsupported=("ports[1].port=int",)),)))


CASES = [
    # --- ports (ref §6) ---
    pytest.param(
        egress(on(tcp("080"))),
        f'{E0}.toPorts[0].ports[0].port: "080" has a leading zero, which Cilium reads as octal; write "80"',
        id="port-leading-zero",
    ),
    pytest.param(
        egress(on(tcp("70000"))),
        f'{E0}.toPorts[0].ports[0].port: "70000" is out of range; use a port number 0-65535',
        id="port-out-of-range",
    ),
    pytest.param(
        egress(on(tcp("my_port"))),
        f"{E0}.toPorts[0].ports[0].port: 'my_port' is not a port; use a number 0-65535 without leading zeros, "
        "or a port name (at most 15 letters, digits and single dashes, with at least one letter)",
        id="port-name-charset",
    ),
    pytest.param(
        egress(on(tcp("a-very-long-port-name"))),
        f"{E0}.toPorts[0].ports[0].port: 'a-very-long-port-name' is not a port; use a number 0-65535 without "
        "leading zeros, or a port name (at most 15 letters, digits and single dashes, with at least one letter)",
        id="port-name-too-long",
    ),
    pytest.param(
        egress(on(tcp(""))),
        f'{E0}.toPorts[0].ports[0].port: is empty; write "0" for every port, or a port number',
        id="port-empty",
    ),
    pytest.param(
        egress(on(tcp("8000", 70000))),
        f"{E0}.toPorts[0].ports[0].endPort: 70000 is out of range; use 0-65535",
        id="end-port-out-of-range",
    ),
    pytest.param(
        _with_int_port(),
        f'{E0}.toPorts[0].ports[1].port: 8080 is a YAML integer, but the CRD requires a string; quote it: port: "8080"',
        id="port-yaml-integer",
    ),
    pytest.param(
        egress(on(*(tcp(str(p)) for p in range(1, 42)))),
        f"{E0}.toPorts[0].ports: has 41 ports, more than 40; split the port rule",
        id="too-many-ports",
    ),
    # --- L7 (ref §7) ---
    pytest.param(
        ingress(on(PortProtocol("80", ANY), rules=http(HTTPRule("GET")))),
        f"{I0}.toPorts[0].ports[0].protocol: is ANY, but L7 rules apply only to TCP; set protocol: TCP",
        id="http-not-tcp",
    ),
    pytest.param(
        ingress(on(tcp("0"), rules=http(HTTPRule("GET")))),
        f'{I0}.toPorts[0].ports[0].port: is "0" (every port), which cannot carry L7 rules; name the ports',
        id="http-on-port-0",
    ),
    pytest.param(
        ingress(on(tcp("80"), rules=L7Rules())),
        f"{I0}.toPorts[0].rules: sets no L7 rule kind; set exactly one of http, dns or kafka, or leave rules out "
        "for plain L4",
        id="rules-empty",
    ),
    pytest.param(
        egress(on(PortProtocol("53", UDP), rules=L7Rules(http=(), dns=()))),
        f"{E0}.toPorts[0].rules: sets http and dns, but only one L7 kind per port rule; split the port rule",
        id="rules-two-kinds",
    ),
    pytest.param(
        ingress(on(PortProtocol("53", UDP), rules=dns(FQDNSelector("a.com")))),
        f"{I0}.toPorts[0].rules.dns: DNS rules are egress only; remove them from ingress",
        id="dns-on-ingress",
    ),
    pytest.param(
        egress(DNS, on(PortProtocol("53", UDP, 54), rules=dns(FQDNSelector("a.com")))),
        f"{NAME}: spec.egress[1].toPorts[0].rules.dns: DNS rules cannot use a port range (53-54); list single ports",
        id="dns-port-range",
    ),
    pytest.param(
        egress(on(rules=dns(FQDNSelector("a.com")))),
        f'{E0}.toPorts[0].rules.dns: DNS rules need explicit ports; add port "53" (protocol ANY)',
        id="dns-without-ports",
    ),
    pytest.param(
        egress(on(PortProtocol("53", L4Protocol.SCTP), rules=dns(FQDNSelector("a.com")))),
        f"{E0}.toPorts[0].rules.dns: DNS rules need protocol UDP, TCP or ANY, not SCTP",
        id="dns-sctp",
    ),
    pytest.param(
        egress(on(tcp("80"), rules=http(HTTPRule(path="/api/(v1")))),
        f"{E0}.toPorts[0].rules.http[0].path: '/api/(v1' is not a valid regular expression (missing ), unterminated "
        "subpattern at position 5); escape literal characters such as '(' with '\\'",
        id="http-path-regex",
    ),
    pytest.param(
        egress(on(tcp("80"), rules=http(HTTPRule(method="GET(?!X)")))),
        f"{E0}.toPorts[0].rules.http[0].method: 'GET(?!X)' uses a look-around, atomic group or named "
        "back-reference, which RE2 (Cilium's regex engine) does not have",
        id="http-method-not-re2",
    ),
    pytest.param(
        egress(on(tcp("80"), rules=http(HTTPRule(host=r"(a)\1")))),
        f"{E0}.toPorts[0].rules.http[0].host: '(a)\\\\1' uses a back-reference, which RE2 (Cilium's regex engine) "
        "does not have",
        id="http-host-backreference",
    ),
    pytest.param(
        egress(on(tcp("9092"), rules=L7Rules(kafka=(KafkaRule(role="admin"),)))),
        f"{E0}.toPorts[0].rules.kafka[0].role: 'admin' is not a role; use produce or consume",
        id="kafka-role",
    ),
    pytest.param(
        egress(on(tcp("9092"), rules=L7Rules(kafka=(KafkaRule(role="produce", api_key="fetch"),)))),
        f"{E0}.toPorts[0].rules.kafka[0]: sets both role and apiKey, which exclude each other; keep one",
        id="kafka-role-and-api-key",
    ),
    pytest.param(
        egress(on(tcp("9092"), rules=L7Rules(kafka=(KafkaRule(api_key="deleteall"),)))),
        f"{E0}.toPorts[0].rules.kafka[0].apiKey: 'deleteall' is not a Kafka API key name; use one such as "
        "produce, fetch or metadata",
        id="kafka-api-key",
    ),
    pytest.param(
        egress(on(tcp("9092"), rules=L7Rules(kafka=(KafkaRule(api_key="fetch", api_version="-1"),)))),
        f"{E0}.toPorts[0].rules.kafka[0].apiVersion: '-1' is not a version; use a number 0-32767",
        id="kafka-api-version",
    ),
    pytest.param(
        egress(on(tcp("9092"), rules=L7Rules(kafka=(KafkaRule(topic="a/b"),)))),
        f"{E0}.toPorts[0].rules.kafka[0].topic: 'a/b' may only use letters, digits, '.', '_' and '-'",
        id="kafka-topic-charset",
    ),
    pytest.param(
        egress(on(tcp("9092"), rules=L7Rules(kafka=(KafkaRule(topic="t" * 256),)))),
        f"{E0}.toPorts[0].rules.kafka[0].topic: '{'t' * 40}'... is longer than 255 characters",
        id="kafka-topic-length",
    ),
    # --- peers (ref §2, §5) ---
    pytest.param(
        egress(PeerRule(endpoints=(APP,), cidrs=("10.0.0.0/8",))),
        f"{E0}: combines toEndpoints and toCIDR, but Cilium allows one kind of peer per rule; split them into "
        "separate rules",
        id="endpoints-and-cidr",
    ),
    pytest.param(
        egress(DNS, PeerRule(fqdns=(FQDNSelector("a.com"),), entities=("world",))),
        f"{NAME}: spec.egress[1]: combines toEntities and toFQDNs, but Cilium allows one kind of peer per rule; "
        "split them into separate rules",
        id="fqdns-and-entities",
    ),
    pytest.param(
        ingress(PeerRule(cidrs=("10.0.0.0/8",), cidr_sets=(CIDRRule("192.0.2.0/24"),))),
        f"{I0}: combines fromCIDR and fromCIDRSet, but Cilium allows one kind of peer per rule; split them into "
        "separate rules",
        id="cidr-and-cidr-set",
    ),
    pytest.param(
        egress(PeerRule(endpoints=(), cidrs=("10.0.0.0/8",))),
        None,
        id="empty-list-is-not-a-peer-kind",
    ),
    pytest.param(
        egress(PeerRule(icmps=((ICMPField(8),),), to_ports=(PortRule((tcp("80"),)),))),
        f"{E0}: has both icmps and toPorts, which Cilium refuses; put icmps in a rule of its own",
        id="icmps-and-ports",
    ),
    pytest.param(
        egress(PeerRule(icmps=(tuple(ICMPField(n) for n in range(41)),))),
        f"{E0}.icmps[0].fields: has 41 entries, more than 40; split the rule",
        id="too-many-icmp-fields",
    ),
    pytest.param(
        egress(PeerRule(icmps=((ICMPField(300),),))),
        f"{E0}.icmps[0].fields[0].type: 300 is not an ICMP type; use a number 0-255 or a name such as EchoRequest",
        id="icmp-type-range",
    ),
    pytest.param(
        egress(PeerRule(icmps=((ICMPField("Ping", "IPv4"),),))),
        f"{E0}.icmps[0].fields[0].type: 'Ping' is not an ICMP type; use a number 0-255 or a name such as EchoRequest",
        id="icmp-type-name",
    ),
    pytest.param(
        egress(PeerRule(icmps=((ICMPField(8, "IPv5"),),))),
        f"{E0}.icmps[0].fields[0].family: 'IPv5' is not a family; use IPv4 or IPv6",
        id="icmp-family",
    ),
    pytest.param(
        egress(PeerRule(entities=("world-ipv4",))),
        f"{E0}.toEntities[0]: 'world-ipv4' is not an entity; use one of all, world, cluster, host, init, ingress, "
        "unmanaged, remote-node, health, none, kube-apiserver",
        id="entity",
    ),
    pytest.param(
        egress(PeerRule(cidrs=("10.0.0.1",))),
        f"{E0}.toCIDR[0]: '10.0.0.1' has no prefix length; write address/length, e.g. 192.0.2.1/32",
        id="cidr-without-length",
    ),
    pytest.param(
        egress(PeerRule(cidrs=("10.0.0.0/33",))),
        f"{E0}.toCIDR[0]: '10.0.0.0/33' is not a CIDR: the prefix length must be a number 0-32",
        id="cidr-length",
    ),
    pytest.param(
        egress(PeerRule(cidrs=("10.0.0.300/8",))),
        f"{E0}.toCIDR[0]: '10.0.0.300/8' is not a CIDR: the address is not an IPv4 or IPv6 address",
        id="cidr-address",
    ),
    pytest.param(
        egress(PeerRule(cidr_sets=(CIDRRule("10.0.0.0/8", ("192.168.0.0/16",)),))),
        f"{E0}.toCIDRSet[0].except[0]: '192.168.0.0/16' is not inside cidr '10.0.0.0/8'; an except must be a "
        "prefix of the same family within the cidr, at least as long",
        id="except-outside",
    ),
    pytest.param(
        egress(PeerRule(cidr_sets=(CIDRRule("10.0.0.0/8", ("::/0",)),))),
        f"{E0}.toCIDRSet[0].except[0]: '::/0' is not inside cidr '10.0.0.0/8'; an except must be a prefix of "
        "the same family within the cidr, at least as long",
        id="except-other-family",
    ),
    pytest.param(
        egress(PeerRule(cidr_sets=(CIDRRule("10.0.0.0/16", ("10.0.0.0/8",)),))),
        f"{E0}.toCIDRSet[0].except[0]: '10.0.0.0/8' is not inside cidr '10.0.0.0/16'; an except must be a "
        "prefix of the same family within the cidr, at least as long",
        id="except-shorter-prefix",
    ),
    pytest.param(
        egress(DNS, PeerRule(fqdns=(FQDNSelector("*.example.com"),))),
        f"{NAME}: spec.egress[1].toFQDNs[0].matchName: '*.example.com' may only use letters, digits, '-', '_' and "
        "single dots; use matchPattern for '*'",
        id="fqdn-name-wildcard",
    ),
    pytest.param(
        egress(DNS, PeerRule(fqdns=(FQDNSelector("a.com", "*.a.com"),))),
        f"{NAME}: spec.egress[1].toFQDNs[0]: needs exactly one of matchName and matchPattern",
        id="fqdn-both",
    ),
    pytest.param(
        egress(DNS, PeerRule(fqdns=(FQDNSelector(),))),
        f"{NAME}: spec.egress[1].toFQDNs[0]: needs exactly one of matchName and matchPattern",
        id="fqdn-neither",
    ),
    pytest.param(
        egress(DNS, PeerRule(fqdns=(FQDNSelector("a" * 256),))),
        f"{NAME}: spec.egress[1].toFQDNs[0].matchName: '{'a' * 40}'... is longer than 255 characters",
        id="fqdn-length",
    ),
    pytest.param(
        egress(DNS, PeerRule(fqdns=(FQDNSelector(match_pattern="api.**.example.com"),))),
        f"{NAME}: spec.egress[1].toFQDNs[0].matchPattern: 'api.**.example.com' has '**' after the start, where it "
        "means the same as '*'; write '*' there",
        id="fqdn-double-star-inside",
    ),
    pytest.param(
        egress(DNS, PeerRule(fqdns=(FQDNSelector(match_pattern="a+b.com"),))),
        f"{NAME}: spec.egress[1].toFQDNs[0].matchPattern: 'a+b.com' may only use letters, digits, '-', '_', '*' "
        "and single dots",
        id="fqdn-pattern-charset",
    ),
    pytest.param(
        egress(PeerRule(fqdns=(FQDNSelector("api.stripe.com"),), to_ports=(PortRule((tcp("443"),)),))),
        f'{E0}.toFQDNs: no egress rule in this policy has a DNS rule (toPorts with rules.dns, port "53"), so '
        "Cilium's DNS proxy never sees the lookups and traffic to these names is dropped; add an egress rule to "
        "the cluster DNS with rules.dns listing the names",
        id="fqdns-without-dns-rule",
    ),
    pytest.param(
        ingress(PeerRule(fqdns=(FQDNSelector("a.com"),))),
        f"{I0}.toFQDNs: DNS names are egress only (there is no fromFQDNs); remove it",
        id="fqdns-on-ingress",
    ),
    pytest.param(
        cnp(Rule(endpoint_selector=APP, egress_deny=(PeerRule(fqdns=(FQDNSelector("a.com"),)),))),
        f"{NAME}: spec.egressDeny[0].toFQDNs: there is no deny form of toFQDNs; deny by toCIDR / toCIDRSet instead",
        id="fqdns-deny",
    ),
    pytest.param(
        cnp(Rule(endpoint_selector=APP, ingress_deny=(on(tcp("80"), rules=http(HTTPRule("GET"))),))),
        f"{NAME}: spec.ingressDeny[0].toPorts[0].rules: deny rules cannot have L7 rules (the CRD has no rules "
        "there and drops them); remove rules",
        id="l7-in-deny",
    ),
    # --- selectors and labels (ref §3) ---
    pytest.param(
        cnp(Rule(endpoint_selector=Selector.of({"app": "x" * 64}), ingress=(PeerRule(),))),
        f"{NAME}: spec.endpointSelector.matchLabels.app: value '{'x' * 64}' is not a valid label value; use at "
        "most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit (or an empty value)",
        id="label-value-length",
    ),
    pytest.param(
        ingress(PeerRule(endpoints=(Selector.of({"app": "a/b"}),))),
        f"{I0}.fromEndpoints[0].matchLabels.app: value 'a/b' is not a valid label value; use at most 63 letters, "
        "digits, '-', '_' and '.', starting and ending with a letter or digit (or an empty value)",
        id="label-value-charset",
    ),
    pytest.param(
        cnp(Rule(endpoint_selector=Selector.of({"a/b/c": "x"}), ingress=(PeerRule(),))),
        f"{NAME}: spec.endpointSelector.matchLabels: key 'a/b/c' is not a valid label key: it has more than one "
        "'/' (Cilium checks it as any.a/b/c)",
        id="label-key-slashes",
    ),
    pytest.param(
        cnp(Rule(endpoint_selector=Selector.of({"k8s:" + "n" * 60: "x"}), ingress=(PeerRule(),))),
        f"{NAME}: spec.endpointSelector.matchLabels: key 'k8s:{'n' * 60}' is not a valid label key: the name must "
        f"be 1-63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit (Cilium checks it "
        f"as k8s.{'n' * 60})",
        id="label-key-too-long-after-source",
    ),
    pytest.param(
        cnp(Rule(endpoint_selector=Selector.of({"k8s:Example.com/app": "x"}), ingress=(PeerRule(),))),
        f"{NAME}: spec.endpointSelector.matchLabels: key 'k8s:Example.com/app' is not a valid label key: the part "
        "before '/' must be a lower-case DNS name of at most 253 characters (Cilium checks it as "
        "k8s.Example.com/app)",
        id="label-key-prefix",
    ),
    pytest.param(
        cnp(Rule(endpoint_selector=Selector((("app", "a"), ("app", "b"))), ingress=(PeerRule(),))),
        f"{NAME}: spec.endpointSelector.matchLabels: key 'app' appears more than once; a YAML mapping keeps only "
        "one, so merge them",
        id="label-key-twice",
    ),
    pytest.param(
        cnp(
            Rule(
                endpoint_selector=Selector(match_expressions=(Requirement("app", Operator.IN),)), ingress=(PeerRule(),)
            )
        ),
        f"{NAME}: spec.endpointSelector.matchExpressions[0]: operator In needs values; list at least one (or use "
        "Exists)",
        id="in-without-values",
    ),
    pytest.param(
        cnp(
            Rule(
                endpoint_selector=Selector(match_expressions=(Requirement("app", Operator.EXISTS, ("x",)),)),
                ingress=(PeerRule(),),
            )
        ),
        f"{NAME}: spec.endpointSelector.matchExpressions[0]: operator Exists takes no values; remove values",
        id="exists-with-values",
    ),
    # --- rules (ref §2, §3, §8) ---
    pytest.param(
        cnp(Rule(ingress=(PeerRule(),))),
        f"{NAME}: spec: has neither endpointSelector nor nodeSelector; set exactly one (endpointSelector: {{}} "
        "selects every pod in the namespace)",
        id="no-selector",
    ),
    pytest.param(
        Policy(Kind.CCNP, "x", specs=(Rule(endpoint_selector=APP, node_selector=APP, ingress=(PeerRule(),)),)),
        "CiliumClusterwideNetworkPolicy x: spec: has both endpointSelector and nodeSelector; keep exactly one",
        id="both-selectors",
    ),
    pytest.param(
        cnp(Rule(node_selector=Selector(), ingress=(PeerRule(),))),
        f"{NAME}: spec.nodeSelector: a CiliumNetworkPolicy cannot select nodes; write host policies as "
        "CiliumClusterwideNetworkPolicy",
        id="node-selector-in-cnp",
    ),
    pytest.param(
        Policy(Kind.CCNP, "x", specs=(Rule(node_selector=Selector(), ingress=(on(tcp("80"), rules=http()),)),)),
        "CiliumClusterwideNetworkPolicy x: spec.ingress[0].toPorts[0].rules: host policies (nodeSelector) support "
        "L7 rules only as DNS rules on egress; remove them",
        id="host-policy-http",
    ),
    pytest.param(
        cnp(Rule(endpoint_selector=APP)),
        f"{NAME}: spec: has no ingress, ingressDeny, egress or egressDeny, and the CRD requires one; use "
        "ingress: [{}] / egress: [{}] for a default-deny rule",
        id="no-section",
    ),
    pytest.param(
        cnp(Rule(endpoint_selector=APP, ingress=(), egress=(), enable_default_deny=EnableDefaultDeny(ingress=True))),
        f"{NAME}: spec: has only empty sections, and the agent rejects a rule with nothing in it (an empty list "
        "is not a default deny); use ingress: [{}] / egress: [{}] for a default-deny rule",
        id="only-empty-sections",
    ),
    pytest.param(
        cnp(),
        f"{NAME}: spec: the policy has neither spec nor specs, and Cilium rejects an empty policy; add a rule",
        id="no-rules",
    ),
    pytest.param(
        cnp(
            Rule(endpoint_selector=APP, ingress=(PeerRule(),)),
            Rule(endpoint_selector=APP, egress=(PeerRule(entities=("internet",)),)),
        ),
        f"{NAME}: specs[1].egress[0].toEntities[0]: 'internet' is not an entity; use one of all, world, cluster, "
        "host, init, ingress, unmanaged, remote-node, health, none, kube-apiserver",
        id="specs-path",
    ),
    # --- metadata ---
    pytest.param(
        Policy(Kind.CNP, "API_v1", "prod", specs=(Rule(endpoint_selector=APP, ingress=(PeerRule(),)),)),
        "CiliumNetworkPolicy prod/API_v1: metadata.name: 'API_v1' is not a valid name; use at most 253 lower-case "
        "letters, digits, '-' and '.', starting and ending with a letter or digit",
        id="name",
    ),
    pytest.param(
        Policy(Kind.CCNP, "x", "prod", specs=(Rule(endpoint_selector=APP, ingress=(PeerRule(),)),)),
        "CiliumClusterwideNetworkPolicy x: metadata.namespace: 'prod' is set, but a cluster-wide policy has no "
        "namespace (the API server drops it); remove it, or make the policy a CiliumNetworkPolicy",
        id="clusterwide-namespace",
    ),
    pytest.param(
        cnp(Rule(endpoint_selector=APP, ingress=(PeerRule(),)), labels=(("team", "payments/core"),)),
        f"{NAME}: metadata.labels.team: value 'payments/core' is not a valid label value; use at most 63 "
        "letters, digits, '-', '_' and '.', starting and ending with a letter or digit (or an empty value)",
        id="metadata-label-value",
    ),
]


@pytest.mark.parametrize(("policy", "message"), CASES)
def test_validate(policy: Policy, message: str | None) -> None:
    assert validate(policy) == ([message] if message else [])


VERSIONED = [
    pytest.param(
        egress(on(tcp("9092"), rules=L7Rules(kafka=(KafkaRule(role="produce"),)))),
        (1, 20),
        f"{E0}.toPorts[0].rules.kafka: Kafka rules were removed in Cilium 1.20 (the target is 1.20); remove them, "
        "or allow the port at L4",
        id="kafka-removed-in-1.20",
    ),
    pytest.param(
        ingress(on(tcp("80"), rules=L7Rules())),
        (1, 20),
        f"{I0}.toPorts[0].rules: sets no L7 rule kind; set exactly one of http or dns, or leave rules out for plain L4",
        id="rules-kinds-of-1.20",
    ),
    pytest.param(
        ingress(PeerRule(), enable_default_deny=EnableDefaultDeny(egress=False)),
        (1, 15),
        f"{I0.removesuffix('.ingress[0]')}.enableDefaultDeny: needs Cilium 1.16 or later (the target is 1.15); "
        "remove it or target 1.16+",
        id="enable-default-deny-before-1.16",
    ),
    pytest.param(
        egress(DNS, PeerRule(fqdns=(FQDNSelector(match_pattern="**.example.com"),))),
        (1, 18),
        f"{NAME}: spec.egress[1].toFQDNs[0].matchPattern: '**.example.com' starts with '**.', which needs Cilium "
        "1.19 or later (the target is 1.18, where it means '*.', one label); target 1.19+ or list the names",
        id="double-star-before-1.19",
    ),
]


@pytest.mark.parametrize(("policy", "version", "message"), VERSIONED)
def test_validate_for_a_version(policy: Policy, version: tuple[int, int], message: str) -> None:
    assert validate(policy, version) == [message]


@pytest.mark.parametrize(
    ("version", "problems"),
    [
        pytest.param((1, 19), 0, id="1.19"),
        pytest.param((1, 20), 1, id="1.20-no-kafka"),
        pytest.param((1, 18), 1, id="1.18-no-double-star"),
        pytest.param((1, 15), 2, id="1.15-no-enable-default-deny"),
    ],
)
def test_the_valid_policy_across_versions(version: tuple[int, int], problems: int) -> None:
    assert len(validate(VALID, version)) == problems


def test_every_problem_is_reported_not_only_the_first() -> None:
    policy = egress(on(tcp("080"), tcp("70000")), PeerRule(entities=("internet",)))
    assert len(validate(policy)) == 3
