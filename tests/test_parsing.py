"""parsing.py: Cilium YAML back into the model (GitOps files, lists, fields flowgen does not model),
errors that name the file, the line and the fix, and the round trip through render.py."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowgen.errors import InputError
from flowgen.policy.model import (
    CIDRRule,
    HTTPRule,
    Kind,
    L7Rules,
    PeerRule,
    Policy,
    PortProtocol,
    PortRule,
    Rule,
    Selector,
)
from flowgen.policy.parsing import parse
from flowgen.policy.render import dump
from flowgen.policy.validation import validate
from tests.test_render import APP, PROPERTY, TCP, cnp, policies

GITOPS = """\
# a GitOps folder file: a Deployment, a policy, an empty document and a List
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
spec:
  replicas: 2
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: api
  namespace: prod
  uid: 1234
  labels:
    team: payments
spec:
  endpointSelector:
    matchLabels:
      app: api
  labels:
  - key: rule
  log:
    value: api
  ingress:
  - fromEndpoints:
    - matchLabels:
        app: web
    fromNodes:
    - matchLabels:
        node: a
    authentication:
      mode: required
    toPorts:
    - ports:
      - port: 8080
        protocol: TCP
      - port: "8443"
        protocol: TCP
      serverNames: [api.example.com]
      rules:
        http:
        - method: GET
          headerMatches:
          - name: X-Token
            value: s
  egress:
  - toServices:
    - k8sService: {serviceName: db, namespace: prod}
  - toGroups:
    - aws: {securityGroupsIds: [sg-1]}
  - toCIDRSet:
    - cidrGroupRef: office
    - cidr: 10.0.0.0/8
  - toPorts:
    - ports:
      - port: "7000"
      rules:
        l7proto: envoy.redis
        l7:
        - cmd: GET
status:
  conditions: []
---
---
apiVersion: v1
kind: List
items:
- apiVersion: cilium.io/v2
  kind: CiliumClusterwideNetworkPolicy
  metadata:
    name: health
  specs:
  - nodeSelector: {}
    ingress:
    - fromEntities: [remote-node, health]
  - endpointSelector: {}
    egress:
    - toEntities: [health]
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: settings}
"""


def test_parse_gitops_file() -> None:
    parsed = parse(GITOPS, "deploy.yaml")
    assert parsed.skipped == [
        "deploy.yaml document 1: kind Deployment is not a Cilium policy; skipped",
        "deploy.yaml document 4 item 2: kind ConfigMap is not a Cilium policy; skipped",
    ]
    assert parsed.warnings == []
    api, health = parsed.policies
    assert api == cnp(
        Rule(
            endpoint_selector=APP,
            ingress=(
                PeerRule(
                    endpoints=(Selector.of({"app": "web"}),),
                    to_ports=(
                        PortRule(
                            (PortProtocol("8080", TCP), PortProtocol("8443", TCP)),
                            L7Rules(http=(HTTPRule(method="GET"),)),
                            unsupported=("ports[0].port=int", "serverNames", "rules.http[0].headerMatches"),
                        ),
                    ),
                    unsupported=("fromNodes", "authentication"),
                ),
            ),
            egress=(
                PeerRule(unsupported=("toServices",)),
                PeerRule(unsupported=("toGroups",)),
                PeerRule(cidr_sets=(CIDRRule("10.0.0.0/8"),), unsupported=("toCIDRSet[0].cidrGroupRef",)),
                PeerRule(
                    to_ports=(PortRule((PortProtocol("7000"),), L7Rules(), unsupported=("rules.l7proto", "rules.l7")),)
                ),
            ),
            unsupported=("labels", "log"),
        ),
        labels=(("team", "payments"),),
    )
    assert health == Policy(
        Kind.CCNP,
        "health",
        specs=(
            Rule(node_selector=Selector(), ingress=(PeerRule(entities=("remote-node", "health")),)),
            Rule(endpoint_selector=Selector(), egress=(PeerRule(entities=("health",)),)),
        ),
        single=False,
    )


def test_integer_ports_are_read_and_reported_by_validate() -> None:
    (policy,) = parse(GITOPS.split("---\n")[1], "api.yaml").policies
    assert (
        "CiliumNetworkPolicy prod/api: spec.ingress[0].toPorts[0].ports[0].port: 8080 is a YAML integer, "
        'but the CRD requires a string; quote it: port: "8080"'
    ) in validate(policy)


def test_parse_typed_lists_whose_items_leave_out_kind() -> None:
    text = """\
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicyList
items:
- metadata: {name: a, namespace: prod}
  spec: {endpointSelector: {}, ingress: [{}]}
"""
    assert parse(text, "list.yaml").policies == [
        Policy(Kind.CNP, "a", "prod", specs=(Rule(endpoint_selector=Selector(), ingress=(PeerRule(),)),))
    ]


def test_parse_spec_and_specs_together_keeps_spec_first() -> None:
    text = """\
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: a, namespace: prod}
specs:
- {endpointSelector: {}, egress: [{}]}
spec: {endpointSelector: {}, ingress: [{}]}
"""
    (policy,) = parse(text, "both.yaml").policies
    assert not policy.single
    assert [r.ingress is not None for r in policy.specs] == [True, False]


def test_parse_skips_other_api_versions_and_objects_without_kind_and_warns_about_extra_keys() -> None:
    text = """\
apiVersion: cilium.io/v2alpha1
kind: CiliumNetworkPolicy
metadata: {name: old}
---
replicas: 3
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: a, namespace: prod}
spec: {endpointSelector: {}, ingress: [{}]}
extra: true
"""
    parsed = parse(text, "mixed.yaml")
    assert parsed.skipped == [
        "mixed.yaml document 1: CiliumNetworkPolicy with apiVersion cilium.io/v2alpha1 (flowgen reads cilium.io/v2); "
        "skipped",
        "mixed.yaml document 2: no kind, not a Kubernetes object; skipped",
    ]
    assert parsed.warnings == ["mixed.yaml document 3: top-level key 'extra' ignored"]
    assert [p.name for p in parsed.policies] == ["a"]


HEAD = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: api, namespace: prod}\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            HEAD + "spec:\n  endpointSelector: {}\n  ingress: - {}\n",
            "reading api.yaml line 6: invalid YAML: sequence entries are not allowed here. Fix the YAML syntax there",
            id="syntax-error",
        ),
        pytest.param(
            HEAD + "spec:\n  description: a\x00b\n",
            "reading api.yaml line 5: character U+0000 is not allowed in YAML. Fix: remove it, or write it as an "
            "escape inside a double-quoted string",
            id="unprintable-character",
        ),
        pytest.param(
            HEAD + "spec:\n  endpointSelector: {}\n  ingress:\n    fromEndpoints: [{}]\n",
            "reading api.yaml line 7: spec.ingress must be a list, not a mapping. "
            'Fix: write one item per line, each starting with "- "',
            id="section-not-a-list",
        ),
        pytest.param(
            HEAD + "spec:\n  endpointSelector: {}\n  ingress:\n  - toPorts:\n    - ports:\n      - port: [80]\n",
            "reading api.yaml line 9: spec.ingress[0].toPorts[0].ports[0].port must be a string, not a list. "
            'Fix: quote the value: "..."',
            id="port-not-convertible",
        ),
        pytest.param(
            HEAD + "spec:\n  endpointSelector: {}\n  ingress:\n  - toPorts:\n    - ports:\n      - port: '80'\n"
            "        protocol: tcp\n",
            "reading api.yaml line 10: spec.ingress[0].toPorts[0].ports[0].protocol 'tcp' is not a protocol flowgen "
            "reads. Fix: use one of TCP, UDP, SCTP, ANY, VRRP, IGMP (upper case, as the CRD requires)",
            id="protocol-lower-case",
        ),
        pytest.param(
            HEAD + "spec:\n  endpointSelector:\n    matchLabels:\n      version: 2\n  ingress: [{}]\n",
            "reading api.yaml line 7: spec.endpointSelector.matchLabels.version must be a string, not the integer '2'. "
            'Fix: quote the value: "2"',
            id="label-value-integer",
        ),
        pytest.param(
            HEAD + "spec:\n  endpointSelector: {}\n  enableDefaultDeny: {ingress: 'false'}\n  ingress: [{}]\n",
            "reading api.yaml line 6: spec.enableDefaultDeny.ingress must be true or false, not the string 'false'. "
            "Fix: write true or false, unquoted",
            id="default-deny-string",
        ),
        pytest.param(
            HEAD + "spec:\n  endpointSelector:\n    matchExpressions:\n    - {key: app, operator: in}\n",
            "reading api.yaml line 7: spec.endpointSelector.matchExpressions[0].operator 'in' is not an operator. "
            "Fix: use one of In, NotIn, Exists, DoesNotExist",
            id="operator",
        ),
        pytest.param(
            HEAD + "spec:\n  endpointSelector: {}\n  ingress: [{}]\n  ingress: []\n",
            "reading api.yaml line 7: spec has the key 'ingress' twice. Fix: remove one of them",
            id="duplicate-key",
        ),
        pytest.param(
            "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {namespace: prod}\n",
            "reading api.yaml line 3: document 1: metadata has no name. Fix: add metadata.name",
            id="no-name",
        ),
        pytest.param(
            "- a\n- b\n",
            "reading api.yaml line 1: document 1 must be a mapping (key: value), not a list",
            id="list-doc",
        ),
    ],
)
def test_parse_errors_name_file_line_and_fix(text: str, message: str) -> None:
    with pytest.raises(InputError) as raised:
        parse(text, "api.yaml")
    assert str(raised.value).startswith(message)


# --- round trip ---------------------------------------------------------------------------------


@PROPERTY
@given(st.lists(policies(), max_size=3))
def test_round_trip(generated: list[Policy]) -> None:
    text = dump(generated)
    assert parse(text, "generated.yaml").policies == generated
    assert dump(generated) == text
