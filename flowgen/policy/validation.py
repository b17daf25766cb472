"""Would Cilium accept a policy? `validate` says what it would reject, and how to fix it.

What the API server (CRD schema) or the agent (Go `Sanitize`, which marks the
policy Valid=False and enforces none of it) would reject, re-stated from ref
cilium-policy.md §1 and §3-§8, plus the toFQDNs/DNS pairing of checklist 6,
without which a toFQDNs rule silently never matches. One message per problem,
naming the policy, the place in the YAML, the bad value and the fix.
"""

from __future__ import annotations

import ipaddress
import re
import warnings

from flowgen.cilium import (
    DEFAULT_DENY_SWITCH,
    DEFAULT_RELEASE,
    MULTI_LABEL_WILDCARD,
    NO_KAFKA_RULES,
    Entity,
    Release,
)
from flowgen.policy.model import (
    ICMP_TYPE_NAMES,
    INT_PORT,
    PEER_KEYS,
    CIDRRule,
    Direction,
    FQDNSelector,
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
    Rule,
    Selector,
)

# Kafka API key names the proxy knows (ref §7.4), compared case-insensitively.
KAFKA_API_KEYS = frozenset(
    [
        "produce",
        "fetch",
        "offsets",
        "metadata",
        "leaderandisr",
        "stopreplica",
        "updatemetadata",
        "controlledshutdown",
        "offsetcommit",
        "offsetfetch",
        "findcoordinator",
        "joingroup",
        "heartbeat",
        "leavegroup",
        "syncgroup",
        "describegroups",
        "listgroups",
        "saslhandshake",
        "apiversions",
        "createtopics",
        "deletetopics",
        "deleterecords",
        "initproducerid",
        "offsetforleaderepoch",
        "addpartitionstotxn",
        "addoffsetstotxn",
        "endtxn",
        "writetxnmarkers",
        "txnoffsetcommit",
        "describeacls",
        "createacls",
        "deleteacls",
        "describeconfigs",
        "alterconfigs",
    ]
)
MAX_PORTS = 40
# The CRD's enum, in its order.
_ENTITY_NAMES = tuple(str(entity) for entity in Entity)
MAX_ICMP_FIELDS = 40

_LABEL_VALUE = re.compile(r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?")
_LABEL_NAME = re.compile(r"[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?")
_DNS_LABEL = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?"
_DNS_SUBDOMAIN = re.compile(rf"{_DNS_LABEL}(?:\.{_DNS_LABEL})*")
_DNS_LABEL_RE = re.compile(_DNS_LABEL)
_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_SERVICE_NAME = re.compile(r"[a-zA-Z0-9]+(?:-[a-zA-Z0-9]+)*")
# The CRD's `^([-a-zA-Z0-9_]+[.]?)+$` (and with `*` for patterns), rewritten without the nested
# quantifier so that Python's backtracking engine stays linear on long non-matching names.
_FQDN_NAME = re.compile(r"[-a-zA-Z0-9_]+(?:\.[-a-zA-Z0-9_]+)*\.?")
_FQDN_PATTERN = re.compile(r"[-a-zA-Z0-9_*]+(?:\.[-a-zA-Z0-9_*]+)*\.?")
_KAFKA_TOPIC = re.compile(r"[a-zA-Z0-9._-]+")
# Python's `re` stands in for Go's RE2 (what the agent compiles HTTP rules with, and Envoy
# matches them with): close, but Python also has look-around, back-references, atomic groups
# and possessive quantifiers, which RE2 rejects, so `_not_re2` looks for those first.
_NOT_RE2_GROUPS = ("(?=", "(?!", "(?<=", "(?<!", "(?>", "(?P=")


def validate(policy: Policy, version: Release = DEFAULT_RELEASE) -> list[str]:
    """Why the API server or the Cilium agent (of `version`) would reject `policy`, one message
    per problem naming the policy, the place (e.g. `spec.egress[2].toPorts[0].ports[1]`), the
    bad value and the fix. An empty list means Cilium accepts it."""
    return _Validator(policy, version).run()


def _version(version: Release) -> str:
    return f"{version[0]}.{version[1]}"


class _Validator:
    def __init__(self, policy: Policy, version: Release) -> None:
        self.policy = policy
        self.version = version
        self.problems: list[str] = []
        if policy.kind is Kind.CNP:
            self.name = f"{policy.kind.value} {policy.namespace + '/' if policy.namespace else ''}{policy.name}"
        else:
            self.name = f"{policy.kind.value} {policy.name}"

    def report(self, where: str, problem: str) -> None:
        self.problems.append(f"{self.name}: {where}: {problem}")

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
        if len(policy.name) > 253 or not _DNS_SUBDOMAIN.fullmatch(policy.name):
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
        elif policy.namespace and (len(policy.namespace) > 63 or not _DNS_LABEL_RE.fullmatch(policy.namespace)):
            self.report(
                "metadata.namespace",
                f"{policy.namespace!r} is not a valid namespace; use at most 63 lower-case letters, digits and '-'",
            )
        for what, pairs in (("labels", policy.labels), ("annotations", policy.annotations)):
            self.duplicates(f"metadata.{what}", pairs)
            for key, value in pairs:
                problem = _qualified_name_problem(key)
                if problem:
                    self.report(f"metadata.{what}", f"key {key!r} {problem}")
                if what == "labels":
                    self.label_value(f"metadata.labels.{key}", value)

    def duplicates(self, where: str, pairs: tuple[tuple[str, str], ...]) -> None:
        keys = [key for key, _ in pairs]
        for key in sorted({key for key in keys if keys.count(key) > 1}):
            self.report(where, f"key {key!r} appears more than once; a YAML mapping keeps only one, so merge them")

    def label_value(self, where: str, value: str) -> None:
        if len(value) > 63 or not _LABEL_VALUE.fullmatch(value):
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
                f"needs Cilium 1.16 or later (the target is {_version(self.version)}); remove it or target 1.16+",
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
        problem = _qualified_name_problem(f"{source}.{name}")
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

    def fqdn(self, selector: FQDNSelector, where: str) -> None:
        if bool(selector.match_name) == bool(selector.match_pattern):
            self.report(where, "needs exactly one of matchName and matchPattern")
        if selector.match_name:
            name = selector.match_name
            if len(name) > 255:
                self.report(f"{where}.matchName", f"{name[:40]!r}... is longer than 255 characters")
            elif not _FQDN_NAME.fullmatch(name):
                self.report(
                    f"{where}.matchName",
                    f"{name!r} may only use letters, digits, '-', '_' and single dots; use matchPattern for '*'",
                )
        if selector.match_pattern:
            self.fqdn_pattern(selector.match_pattern, f"{where}.matchPattern")

    def fqdn_pattern(self, pattern: str, where: str) -> None:
        if len(pattern) > 255:
            self.report(where, f"{pattern[:40]!r}... is longer than 255 characters")
            return
        if not _FQDN_PATTERN.fullmatch(pattern):
            self.report(where, f"{pattern!r} may only use letters, digits, '-', '_', '*' and single dots")
            return
        if set(pattern) <= {"*", "."}:
            return  # only stars: every name
        prefix = re.match(r"\*{2,}\.", pattern)
        if prefix and self.version < MULTI_LABEL_WILDCARD:
            self.report(
                where,
                f"{pattern!r} starts with '**.', which needs Cilium 1.19 or later (the target is "
                f"{_version(self.version)}, where it means '*.', one label); target 1.19+ or list the names",
            )
        if "**" in pattern[prefix.end() if prefix else 0 :]:
            self.report(where, f"{pattern!r} has '**' after the start, where it means the same as '*'; write '*' there")

    def cidr(self, where: str, cidr: str) -> None:
        problem = _cidr_problem(cidr)
        if problem:
            self.report(where, f"{cidr!r} {problem}")

    def cidr_rule(self, where: str, rule: CIDRRule) -> None:
        problem = _cidr_problem(rule.cidr)
        if problem:
            self.report(f"{where}.cidr", f"{rule.cidr!r} {problem}")
        for k, carve_out in enumerate(rule.excepts):
            here = f"{where}.except[{k}]"
            problem = _cidr_problem(carve_out)
            if problem:
                self.report(here, f"{carve_out!r} {problem}")
                continue
            if _cidr_problem(rule.cidr):
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
                valid = (bool(_DECIMAL.fullmatch(kind)) and int(kind) <= 255) or kind in ICMP_TYPE_NAMES
            if not valid:
                self.report(
                    f"{here}.type", f"{kind!r} is not an ICMP type; use a number 0-255 or a name such as EchoRequest"
                )
            if icmp.family not in ("IPv4", "IPv6"):
                self.report(f"{here}.family", f"{icmp.family!r} is not a family; use IPv4 or IPv6")

    # Ports and L7 ------------------------------------------------------------

    def port_rule(self, rule: PortRule, where: str, *, to: bool, deny: bool, host: bool) -> None:
        for entry in rule.unsupported:
            if entry.endswith(f".port{INT_PORT}"):
                index = entry.removesuffix(INT_PORT)
                value = _port_at(rule, index)
                self.report(
                    f"{where}.{index}",
                    f'{value} is a YAML integer, but the CRD requires a string; quote it: port: "{value}"',
                )
        if len(rule.ports) > MAX_PORTS:
            self.report(f"{where}.ports", f"has {len(rule.ports)} ports, more than {MAX_PORTS}; split the port rule")
        for m, port in enumerate(rule.ports):
            self.port(port, f"{where}.ports[{m}]")
        if rule.rules is not None:
            self.l7(rule, rule.rules, where, to=to, deny=deny, host=host)

    def port(self, port: PortProtocol, where: str) -> None:
        text = port.port
        if text == "":
            self.report(f"{where}.port", 'is empty; write "0" for every port, or a port number')
        elif text.isdecimal() and text.isascii():
            if not _DECIMAL.fullmatch(text):
                self.report(
                    f"{where}.port",
                    f'"{text}" has a leading zero, which Cilium reads as octal; write "{int(text)}"',
                )
            elif int(text) > 65535:
                self.report(f"{where}.port", f'"{text}" is out of range; use a port number 0-65535')
        elif len(text) > 15 or not _SERVICE_NAME.fullmatch(text) or not any(c.isalpha() for c in text):
            self.report(
                f"{where}.port",
                f"{text!r} is not a port; use a number 0-65535 without leading zeros, or a port name "
                "(at most 15 letters, digits and single dashes, with at least one letter)",
            )
        if port.end_port is not None and not 0 <= port.end_port <= 65535:
            self.report(f"{where}.endPort", f"{port.end_port} is out of range; use 0-65535")

    def l7(self, port_rule: PortRule, rules: L7Rules, where: str, *, to: bool, deny: bool, host: bool) -> None:
        here = f"{where}.rules"
        kinds = [
            name
            for name, value in (("http", rules.http), ("dns", rules.dns), ("kafka", rules.kafka))
            if value is not None
        ]
        if deny:
            self.report(
                here, "deny rules cannot have L7 rules (the CRD has no rules there and drops them); remove rules"
            )
        if not kinds:
            allowed = "http or dns" if self.version >= NO_KAFKA_RULES else "http, dns or kafka"
            self.report(here, f"sets no L7 rule kind; set exactly one of {allowed}, or leave rules out for plain L4")
        elif len(kinds) > 1:
            self.report(here, f"sets {' and '.join(kinds)}, but only one L7 kind per port rule; split the port rule")
        if host and kinds and (kinds != ["dns"] or not to):
            self.report(here, "host policies (nodeSelector) support L7 rules only as DNS rules on egress; remove them")
        if rules.dns is not None:
            self.dns_ports(port_rule, here, to=to)
        elif kinds:
            for m, port in enumerate(port_rule.ports):
                if port.protocol is not L4Protocol.TCP:
                    self.report(
                        f"{where}.ports[{m}].protocol",
                        f"is {port.protocol.value}, but L7 rules apply only to TCP; set protocol: TCP",
                    )
        if kinds:
            for m, port in enumerate(port_rule.ports):
                if _DECIMAL.fullmatch(port.port) and int(port.port) == 0:
                    self.report(
                        f"{where}.ports[{m}].port", 'is "0" (every port), which cannot carry L7 rules; name the ports'
                    )
        for n, http in enumerate(rules.http or ()):
            for name, pattern in (("method", http.method), ("path", http.path), ("host", http.host)):
                problem = _regex_problem(pattern) if pattern else None
                if problem:
                    self.report(f"{here}.http[{n}].{name}", f"{pattern!r} {problem}")
        for n, selector in enumerate(rules.dns or ()):
            self.fqdn(selector, f"{here}.dns[{n}]")
        if rules.kafka is not None and self.version >= NO_KAFKA_RULES:
            self.report(
                f"{here}.kafka",
                f"Kafka rules were removed in Cilium 1.20 (the target is {_version(self.version)}); "
                "remove them, or allow the port at L4",
            )
        for n, kafka in enumerate(rules.kafka or ()):
            self.kafka(kafka, f"{here}.kafka[{n}]")

    def dns_ports(self, port_rule: PortRule, here: str, *, to: bool) -> None:
        if not to:
            self.report(f"{here}.dns", "DNS rules are egress only; remove them from ingress")
        if not port_rule.ports:
            self.report(f"{here}.dns", 'DNS rules need explicit ports; add port "53" (protocol ANY)')
        for port in port_rule.ports:
            if port.protocol not in (L4Protocol.UDP, L4Protocol.TCP, L4Protocol.ANY):
                self.report(f"{here}.dns", f"DNS rules need protocol UDP, TCP or ANY, not {port.protocol.value}")
            number = int(port.port) if _DECIMAL.fullmatch(port.port) else None
            if number is not None and port.end_port is not None and port.end_port > number:
                self.report(
                    f"{here}.dns",
                    f"DNS rules cannot use a port range ({port.port}-{port.end_port}); list single ports",
                )

    def kafka(self, rule: KafkaRule, where: str) -> None:
        if rule.role and rule.role not in ("produce", "consume"):
            self.report(f"{where}.role", f"{rule.role!r} is not a role; use produce or consume")
        if rule.role and rule.api_key:
            self.report(where, "sets both role and apiKey, which exclude each other; keep one")
        if rule.api_key and rule.api_key.lower() not in KAFKA_API_KEYS:
            self.report(
                f"{where}.apiKey",
                f"{rule.api_key!r} is not a Kafka API key name; use one such as produce, fetch or metadata",
            )
        if rule.api_version and not (_DECIMAL.fullmatch(rule.api_version) and int(rule.api_version) <= 32767):
            self.report(f"{where}.apiVersion", f"{rule.api_version!r} is not a version; use a number 0-32767")
        if len(rule.topic) > 255:
            self.report(f"{where}.topic", f"{rule.topic[:40]!r}... is longer than 255 characters")
        elif rule.topic and not _KAFKA_TOPIC.fullmatch(rule.topic):
            self.report(f"{where}.topic", f"{rule.topic!r} may only use letters, digits, '.', '_' and '-'")


def _port_at(rule: PortRule, index: str) -> str:
    """The port named by `ports[<i>].port` (an INT_PORT record), or "?" when out of range."""
    match = re.fullmatch(r"ports\[(\d+)\]\.port", index)
    if match and int(match.group(1)) < len(rule.ports):
        return rule.ports[int(match.group(1))].port
    return "?"


def _qualified_name_problem(key: str) -> str | None:
    """Why `key` is not a Kubernetes qualified name (`[prefix/]name`), or None."""
    parts = key.split("/")
    if len(parts) > 2:
        return "is not a valid label key: it has more than one '/'"
    name = parts[-1]
    if len(parts) == 2 and (not parts[0] or len(parts[0]) > 253 or not _DNS_SUBDOMAIN.fullmatch(parts[0])):
        return "is not a valid label key: the part before '/' must be a lower-case DNS name of at most 253 characters"
    if len(name) > 63 or not _LABEL_NAME.fullmatch(name):
        return (
            "is not a valid label key: the name must be 1-63 letters, digits, '-', '_' and '.', "
            "starting and ending with a letter or digit"
        )
    return None


def _cidr_problem(text: str) -> str | None:
    """Why `text` is not an `address/length` prefix as the CRD (`format: cidr`) and Go read it, or None."""
    address, slash, length = text.partition("/")
    if not slash:
        return "has no prefix length; write address/length, e.g. 192.0.2.1/32"
    if "%" in address:
        return "is not a CIDR: zones are not allowed"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return "is not a CIDR: the address is not an IPv4 or IPv6 address"
    if not (length.isascii() and _DECIMAL.fullmatch(length)) or int(length) > ip.max_prefixlen:
        return f"is not a CIDR: the prefix length must be a number 0-{ip.max_prefixlen}"
    return None


def _regex_problem(pattern: str) -> str | None:
    """Why `pattern` would not compile as RE2, approximated with Python's `re`, or None."""
    construct = _not_re2(pattern)
    if construct:
        return f"uses {construct}, which RE2 (Cilium's regex engine) does not have"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            re.compile(pattern)
    except re.error as error:
        return f"is not a valid regular expression ({error}); escape literal characters such as '(' with '\\'"
    return None


def _not_re2(pattern: str) -> str | None:
    """A construct Python's `re` accepts and RE2 does not, outside escapes and character classes."""
    i, in_class, after_quantifier = 0, False, False
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            if not in_class and pattern[i + 1 : i + 2] in set("123456789"):
                return "a back-reference"
            i, after_quantifier = i + 2, False
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
            i += 2 if pattern.startswith("[^]", i) else 1
            i += 1 if pattern.startswith("]", i) else 0
            after_quantifier = False
            continue
        elif char == "(" and pattern.startswith(_NOT_RE2_GROUPS, i):
            return "a look-around, atomic group or named back-reference"
        elif char == "+" and after_quantifier:
            return "a possessive quantifier"
        after_quantifier = not in_class and char in "*+?" and not after_quantifier
        i += 1
    return None
