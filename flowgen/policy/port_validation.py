"""The checks under a peer's toPorts, for `validation.validate`: port numbers and names, and the
L7 rules on them (HTTP regexes, DNS, Kafka); and the DNS name selectors that toFQDNs and
rules.dns share.

`PortValidator` collects the messages (one per problem, naming the policy, the place, the bad
value and the fix); `validation` extends it with the metadata, the rules and their peers.
"""

from __future__ import annotations

import re

from flowgen.cilium import MULTI_LABEL_WILDCARD, NO_KAFKA_RULES, Release
from flowgen.policy.formats import DECIMAL, FQDN_NAME, FQDN_PATTERN, KAFKA_TOPIC, SERVICE_NAME, regex_problem
from flowgen.policy.model import (
    INT_PORT,
    FQDNSelector,
    KafkaRule,
    Kind,
    L4Protocol,
    L7Rules,
    Policy,
    PortProtocol,
    PortRule,
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


class PortValidator:
    """The messages found in `policy` (for Cilium `version`), and the checks of its toPorts entries
    and DNS name selectors."""

    def __init__(self, policy: Policy, version: Release) -> None:
        self.policy = policy
        self.version = version
        self.problems: list[str] = []
        # The target release as messages name it, e.g. "1.19".
        self.target = f"{version[0]}.{version[1]}"
        if policy.kind is Kind.CNP:
            self.name = f"{policy.kind.value} {policy.namespace + '/' if policy.namespace else ''}{policy.name}"
        else:
            self.name = f"{policy.kind.value} {policy.name}"

    def report(self, where: str, problem: str) -> None:
        self.problems.append(f"{self.name}: {where}: {problem}")

    # DNS names ---------------------------------------------------------------

    def fqdn(self, selector: FQDNSelector, where: str) -> None:
        if bool(selector.match_name) == bool(selector.match_pattern):
            self.report(where, "needs exactly one of matchName and matchPattern")
        if selector.match_name:
            name = selector.match_name
            if len(name) > 255:
                self.report(f"{where}.matchName", f"{name[:40]!r}... is longer than 255 characters")
            elif not FQDN_NAME.fullmatch(name):
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
        if not FQDN_PATTERN.fullmatch(pattern):
            self.report(where, f"{pattern!r} may only use letters, digits, '-', '_', '*' and single dots")
            return
        if set(pattern) <= {"*", "."}:
            return  # only stars: every name
        prefix = re.match(r"\*{2,}\.", pattern)
        if prefix and self.version < MULTI_LABEL_WILDCARD:
            self.report(
                where,
                f"{pattern!r} starts with '**.', which needs Cilium 1.19 or later (the target is "
                f"{self.target}, where it means '*.', one label); target 1.19+ or list the names",
            )
        if "**" in pattern[prefix.end() if prefix else 0 :]:
            self.report(where, f"{pattern!r} has '**' after the start, where it means the same as '*'; write '*' there")

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
            if not DECIMAL.fullmatch(text):
                self.report(
                    f"{where}.port",
                    f'"{text}" has a leading zero, which Cilium reads as octal; write "{int(text)}"',
                )
            elif int(text) > 65535:
                self.report(f"{where}.port", f'"{text}" is out of range; use a port number 0-65535')
        elif len(text) > 15 or not SERVICE_NAME.fullmatch(text) or not any(c.isalpha() for c in text):
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
                if DECIMAL.fullmatch(port.port) and int(port.port) == 0:
                    self.report(
                        f"{where}.ports[{m}].port", 'is "0" (every port), which cannot carry L7 rules; name the ports'
                    )
        for n, http in enumerate(rules.http or ()):
            for name, pattern in (("method", http.method), ("path", http.path), ("host", http.host)):
                problem = regex_problem(pattern) if pattern else None
                if problem:
                    self.report(f"{here}.http[{n}].{name}", f"{pattern!r} {problem}")
        for n, selector in enumerate(rules.dns or ()):
            self.fqdn(selector, f"{here}.dns[{n}]")
        if rules.kafka is not None and self.version >= NO_KAFKA_RULES:
            self.report(
                f"{here}.kafka",
                f"Kafka rules were removed in Cilium 1.20 (the target is {self.target}); "
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
            number = int(port.port) if DECIMAL.fullmatch(port.port) else None
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
        if rule.api_version and not (DECIMAL.fullmatch(rule.api_version) and int(rule.api_version) <= 32767):
            self.report(f"{where}.apiVersion", f"{rule.api_version!r} is not a version; use a number 0-32767")
        if len(rule.topic) > 255:
            self.report(f"{where}.topic", f"{rule.topic[:40]!r}... is longer than 255 characters")
        elif rule.topic and not KAFKA_TOPIC.fullmatch(rule.topic):
            self.report(f"{where}.topic", f"{rule.topic!r} may only use letters, digits, '.', '_' and '-'")


def _port_at(rule: PortRule, index: str) -> str:
    """The port named by `ports[<i>].port` (an INT_PORT record), or "?" when out of range."""
    match = re.fullmatch(r"ports\[(\d+)\]\.port", index)
    if match and int(match.group(1)) < len(rule.ports):
        return rule.ports[int(match.group(1))].port
    return "?"
