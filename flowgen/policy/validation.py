"""Would Cilium accept a policy? `validate` says what it would reject, and how to fix it.

What the API server (CRD schema) or the agent (Go `Sanitize`, which marks the
policy Valid=False and enforces none of it) would reject, re-stated from ref
cilium-policy.md §1 and §3-§8, plus the toFQDNs/DNS pairing of checklist 6,
without which a toFQDNs rule silently never matches. One message per problem,
naming the policy, the place in the YAML, the bad value and the fix.

This module checks the metadata, the rules and their peers; the checks under
toPorts (ports, L7 rules) and of DNS names are in `port_validation`, and the
formats of single values (names, label keys, CIDRs, regexes) in `formats`.
"""

from __future__ import annotations

import ipaddress

from flowgen.cilium import DEFAULT_DENY_SWITCH, DEFAULT_RELEASE, Entity, Release
from flowgen.policy.formats import (
    DECIMAL,
    DNS_LABEL,
    DNS_SUBDOMAIN,
    LABEL_VALUE,
    cidr_problem,
    qualified_name_problem,
)
from flowgen.policy.model import (
    ICMP_TYPE_NAMES,
    PEER_KEYS,
    CIDRRule,
    Direction,
    ICMPField,
    Kind,
    Operator,
    PeerRule,
    Policy,
    Rule,
    Selector,
)
from flowgen.policy.port_validation import PortValidator

# The CRD's enum, in its order.
_ENTITY_NAMES = tuple(str(entity) for entity in Entity)
MAX_ICMP_FIELDS = 40


def validate(policy: Policy, version: Release = DEFAULT_RELEASE) -> list[str]:
    """Why the API server or the Cilium agent (of `version`) would reject `policy`, one message
    per problem naming the policy, the place (e.g. `spec.egress[2].toPorts[0].ports[1]`), the
    bad value and the fix. An empty list means Cilium accepts it."""
    return _Validator(policy, version).run()


class _Validator(PortValidator):
    """`PortValidator` with the checks of the metadata, the rules and their peers."""

    def run(self) -> list[str]:
        policy = self.policy
        self.metadata()
        if not policy.specs:
            self.report("spec", "the policy has neither spec nor specs, and Cilium rejects an empty policy; add a rule")
        single = policy.single and len(policy.specs) == 1
        for i, rule in enumerate(policy.specs):
            self.rule(rule, "spec" if single else f"specs[{i}]")
        return self.problems

    # Metadata ----------------------------------------------------------------

    def metadata(self) -> None:
        policy = self.policy
        if len(policy.name) > 253 or not DNS_SUBDOMAIN.fullmatch(policy.name):
            self.report(
                "metadata.name",
                f"{policy.name!r} is not a valid name; use at most 253 lower-case letters, digits, '-' and '.', "
                "starting and ending with a letter or digit",
            )
        if policy.kind is Kind.CCNP and policy.namespace:
            self.report(
                "metadata.namespace",
                f"{policy.namespace!r} is set, but a cluster-wide policy has no namespace (the API server drops it); "
                "remove it, or make the policy a CiliumNetworkPolicy",
            )
        elif policy.namespace and (len(policy.namespace) > 63 or not DNS_LABEL.fullmatch(policy.namespace)):
            self.report(
                "metadata.namespace",
                f"{policy.namespace!r} is not a valid namespace; use at most 63 lower-case letters, digits and '-'",
            )
        for what, pairs in (("labels", policy.labels), ("annotations", policy.annotations)):
            self.duplicates(f"metadata.{what}", pairs)
            for key, value in pairs:
                problem = qualified_name_problem(key)
                if problem:
                    self.report(f"metadata.{what}", f"key {key!r} {problem}")
                if what == "labels":
                    self.label_value(f"metadata.labels.{key}", value)

    def duplicates(self, where: str, pairs: tuple[tuple[str, str], ...]) -> None:
        keys = [key for key, _ in pairs]
        for key in sorted({key for key in keys if keys.count(key) > 1}):
            self.report(where, f"key {key!r} appears more than once; a YAML mapping keeps only one, so merge them")

    def label_value(self, where: str, value: str) -> None:
        if len(value) > 63 or not LABEL_VALUE.fullmatch(value):
            self.report(
                where,
                f"value {value!r} is not a valid label value; use at most 63 letters, digits, '-', '_' and '.', "
                "starting and ending with a letter or digit (or an empty value)",
            )

    # Rules -------------------------------------------------------------------

    def rule(self, rule: Rule, path: str) -> None:
        cnp = self.policy.kind is Kind.CNP
        if rule.endpoint_selector is None and rule.node_selector is None:
            self.report(
                path,
                "has neither endpointSelector nor nodeSelector; set exactly one "
                f"(endpointSelector: {{}} selects every {'pod in the namespace' if cnp else 'endpoint'})",
            )
        if rule.endpoint_selector is not None and rule.node_selector is not None:
            self.report(path, "has both endpointSelector and nodeSelector; keep exactly one")
        if rule.endpoint_selector is not None:
            self.selector(rule.endpoint_selector, f"{path}.endpointSelector")
        if rule.node_selector is not None:
            if cnp:
                self.report(
                    f"{path}.nodeSelector",
                    "a CiliumNetworkPolicy cannot select nodes; write host policies as CiliumClusterwideNetworkPolicy",
                )
            self.selector(rule.node_selector, f"{path}.nodeSelector")
        sections = [
            ("ingress", Direction.INGRESS, False, rule.ingress),
            ("ingressDeny", Direction.INGRESS, True, rule.ingress_deny),
            ("egress", Direction.EGRESS, False, rule.egress),
            ("egressDeny", Direction.EGRESS, True, rule.egress_deny),
        ]
        present = [section for *_, section in sections if section is not None]
        if not present:
            self.report(
                path,
                "has no ingress, ingressDeny, egress or egressDeny, and the CRD requires one; "
                "use ingress: [{}] / egress: [{}] for a default-deny rule",
            )
        elif not any(present):
            self.report(
                path,
                "has only empty sections, and the agent rejects a rule with nothing in it (an empty list is not "
                "a default deny); use ingress: [{}] / egress: [{}] for a default-deny rule",
            )
        if rule.enable_default_deny is not None and self.version < DEFAULT_DENY_SWITCH:
            self.report(
                f"{path}.enableDefaultDeny",
                f"needs Cilium 1.16 or later (the target is {self.target}); remove it or target 1.16+",
            )
        host = rule.node_selector is not None
        for key, direction, deny, section in sections:
            for j, peer in enumerate(section or ()):
                self.peer(peer, f"{path}.{key}[{j}]", direction, deny=deny, host=host)

    def selector(self, selector: Selector, where: str) -> None:
        self.duplicates(f"{where}.matchLabels", selector.match_labels)
        for key, value in selector.match_labels:
            self.label_key(f"{where}.matchLabels", key)
            self.label_value(f"{where}.matchLabels.{key}", value)
        for n, requirement in enumerate(selector.match_expressions):
            here = f"{where}.matchExpressions[{n}]"
            self.label_key(here, requirement.key)
            operator = requirement.operator
            if operator in (Operator.IN, Operator.NOT_IN) and not requirement.values:
                self.report(here, f"operator {operator.value} needs values; list at least one (or use Exists)")
            if operator in (Operator.EXISTS, Operator.DOES_NOT_EXIST) and requirement.values:
                self.report(here, f"operator {operator.value} takes no values; remove values")
            for m, value in enumerate(requirement.values):
                self.label_value(f"{here}.values[{m}]", value)

    def label_key(self, where: str, key: str) -> None:
        # The agent rewrites `source:key` to `source.key` (a plain key to `any.key`, `$host` to
        # `reserved.host`) and then checks a Kubernetes qualified name (ref §3).
        if key.startswith("$"):
            source, name = "reserved", key[1:]
        else:
            source, colon, name = key.partition(":")
            if not colon:
                source, name = "any", key
        problem = qualified_name_problem(f"{source}.{name}")
        if problem:
            self.report(where, f"key {key!r} {problem} (Cilium checks it as {source}.{name})")

    # Peers -------------------------------------------------------------------

    def peer(self, peer: PeerRule, where: str, direction: Direction, *, deny: bool, host: bool) -> None:
        to = direction is Direction.EGRESS
        endpoints, entities, cidrs, cidr_sets = PEER_KEYS[direction]
        kinds = [
            (endpoints, peer.endpoints),
            (entities, peer.entities),
            (cidrs, peer.cidrs),
            (cidr_sets, peer.cidr_sets),
            ("toFQDNs", peer.fqdns),
        ]
        used = [name for name, values in kinds if values]
        if len(used) > 1:
            self.report(
                where,
                f"combines {' and '.join(used)}, but Cilium allows one kind of peer per rule; "
                "split them into separate rules",
            )
        if peer.icmps and peer.to_ports:
            self.report(where, "has both icmps and toPorts, which Cilium refuses; put icmps in a rule of its own")
        for k, selector in enumerate(peer.endpoints or ()):
            self.selector(selector, f"{where}.{endpoints}[{k}]")
        for k, entity in enumerate(peer.entities or ()):
            if entity not in _ENTITY_NAMES:
                self.report(
                    f"{where}.{entities}[{k}]", f"{entity!r} is not an entity; use one of {', '.join(_ENTITY_NAMES)}"
                )
        for k, cidr in enumerate(peer.cidrs or ()):
            self.cidr(f"{where}.{cidrs}[{k}]", cidr)
        for k, cidr_rule in enumerate(peer.cidr_sets or ()):
            self.cidr_rule(f"{where}.{cidr_sets}[{k}]", cidr_rule)
        if peer.fqdns is not None:
            self.fqdns(peer, where, to=to, deny=deny)
        for k, port_rule in enumerate(peer.to_ports or ()):
            self.port_rule(port_rule, f"{where}.toPorts[{k}]", to=to, deny=deny, host=host)
        for k, fields in enumerate(peer.icmps or ()):
            self.icmp(fields, f"{where}.icmps[{k}]")

    def fqdns(self, peer: PeerRule, where: str, *, to: bool, deny: bool) -> None:
        if not to:
            self.report(f"{where}.toFQDNs", "DNS names are egress only (there is no fromFQDNs); remove it")
        elif deny:
            self.report(f"{where}.toFQDNs", "there is no deny form of toFQDNs; deny by toCIDR / toCIDRSet instead")
        elif peer.fqdns and not self.has_dns_rule():
            self.report(
                f"{where}.toFQDNs",
                'no egress rule in this policy has a DNS rule (toPorts with rules.dns, port "53"), so Cilium\'s '
                "DNS proxy never sees the lookups and traffic to these names is dropped; add an egress rule to "
                "the cluster DNS with rules.dns listing the names",
            )
        for k, selector in enumerate(peer.fqdns or ()):
            self.fqdn(selector, f"{where}.toFQDNs[{k}]")

    def has_dns_rule(self) -> bool:
        # The agent only needs *some* port on a DNS rule (OpenShift's DNS listens on 5353, ref §12).
        return any(
            port_rule.rules is not None and port_rule.rules.dns is not None and port_rule.ports
            for rule in self.policy.specs
            for peer in rule.egress or ()
            for port_rule in peer.to_ports or ()
        )

    def cidr(self, where: str, cidr: str) -> None:
        problem = cidr_problem(cidr)
        if problem:
            self.report(where, f"{cidr!r} {problem}")

    def cidr_rule(self, where: str, rule: CIDRRule) -> None:
        problem = cidr_problem(rule.cidr)
        if problem:
            self.report(f"{where}.cidr", f"{rule.cidr!r} {problem}")
        for k, carve_out in enumerate(rule.excepts):
            here = f"{where}.except[{k}]"
            problem = cidr_problem(carve_out)
            if problem:
                self.report(here, f"{carve_out!r} {problem}")
                continue
            if cidr_problem(rule.cidr):
                continue
            outer = ipaddress.ip_network(rule.cidr, strict=False)
            inner = ipaddress.ip_network(carve_out, strict=False)
            address = ipaddress.ip_address(carve_out.partition("/")[0])
            if inner.version != outer.version or address not in outer or inner.prefixlen < outer.prefixlen:
                self.report(
                    here,
                    f"{carve_out!r} is not inside cidr {rule.cidr!r}; an except must be a prefix of the same family "
                    "within the cidr, at least as long",
                )

    def icmp(self, fields: tuple[ICMPField, ...], where: str) -> None:
        if len(fields) > MAX_ICMP_FIELDS:
            self.report(f"{where}.fields", f"has {len(fields)} entries, more than {MAX_ICMP_FIELDS}; split the rule")
        for k, icmp in enumerate(fields):
            here = f"{where}.fields[{k}]"
            kind = icmp.type
            if isinstance(kind, int):
                valid = 0 <= kind <= 255
            else:
                valid = (bool(DECIMAL.fullmatch(kind)) and int(kind) <= 255) or kind in ICMP_TYPE_NAMES
            if not valid:
                self.report(
                    f"{here}.type", f"{kind!r} is not an ICMP type; use a number 0-255 or a name such as EchoRequest"
                )
            if icmp.family not in ("IPv4", "IPv6"):
                self.report(f"{here}.family", f"{icmp.family!r} is not a family; use IPv4 or IPv6")
