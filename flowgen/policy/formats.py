"""The string formats the API server and the Cilium agent check, for `validation`.

Pure checks of single values: Kubernetes names, label keys and values, port
names, DNS names, Kafka topics, CIDRs and RE2 regexes. A `*_problem` function
returns why the value is not of its format (worded to follow the value in a
message), or None.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import warnings

LABEL_VALUE = re.compile(r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?")
_LABEL_NAME = re.compile(r"[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?")
_DNS_LABEL = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?"
DNS_SUBDOMAIN = re.compile(rf"{_DNS_LABEL}(?:\.{_DNS_LABEL})*")
DNS_LABEL = re.compile(_DNS_LABEL)
DECIMAL = re.compile(r"0|[1-9][0-9]*")
SERVICE_NAME = re.compile(r"[a-zA-Z0-9]+(?:-[a-zA-Z0-9]+)*")
# The CRD's `^([-a-zA-Z0-9_]+[.]?)+$` (and with `*` for patterns), rewritten without the nested
# quantifier so that Python's backtracking engine stays linear on long non-matching names.
FQDN_NAME = re.compile(r"[-a-zA-Z0-9_]+(?:\.[-a-zA-Z0-9_]+)*\.?")
FQDN_PATTERN = re.compile(r"[-a-zA-Z0-9_*]+(?:\.[-a-zA-Z0-9_*]+)*\.?")
KAFKA_TOPIC = re.compile(r"[a-zA-Z0-9._-]+")
# Python's `re` stands in for Go's RE2 (what the agent compiles HTTP rules with, and Envoy
# matches them with): close, but Python also has look-around, back-references, atomic groups
# and possessive quantifiers, which RE2 rejects, so `_not_re2` looks for those first.
_NOT_RE2_GROUPS = ("(?=", "(?!", "(?<=", "(?<!", "(?>", "(?P=")


def qualified_name_problem(key: str) -> str | None:
    """Why `key` is not a Kubernetes qualified name (`[prefix/]name`), or None."""
    parts = key.split("/")
    if len(parts) > 2:
        return "is not a valid label key: it has more than one '/'"
    name = parts[-1]
    if len(parts) == 2 and (not parts[0] or len(parts[0]) > 253 or not DNS_SUBDOMAIN.fullmatch(parts[0])):
        return "is not a valid label key: the part before '/' must be a lower-case DNS name of at most 253 characters"
    if len(name) > 63 or not _LABEL_NAME.fullmatch(name):
        return (
            "is not a valid label key: the name must be 1-63 letters, digits, '-', '_' and '.', "
            "starting and ending with a letter or digit"
        )
    return None


def cidr_problem(text: str) -> str | None:
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
    if not (length.isascii() and DECIMAL.fullmatch(length)) or int(length) > ip.max_prefixlen:
        return f"is not a CIDR: the prefix length must be a number 0-{ip.max_prefixlen}"
    return None


@functools.lru_cache(maxsize=4096)
def regex_problem(pattern: str) -> str | None:
    """Why `pattern` would not compile as RE2, approximated with Python's `re`, or would be
    refused by Envoy for its size (see `program_size_problem`), or None. Remembered: every
    workload behind one API usually gets the same few path regexes."""
    construct = _not_re2(pattern)
    if construct:
        return f"uses {construct}, which RE2 (Cilium's regex engine) does not have"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            re.compile(pattern)
    except re.error as error:
        return f"is not a valid regular expression ({error}); escape literal characters such as '(' with '\\'"
    return program_size_problem(pattern)


# Envoy's limit on the RE2 program size of a regex (Cilium keeps Envoy's default): over it, the
# listener config is refused and none of the endpoint's L7 policies is enforced.
ENVOY_MAX_PROGRAM_SIZE = 100


def program_size_problem(pattern: str) -> str | None:
    """Why Envoy would refuse `pattern` for the size of its compiled RE2 program, or None.
    A literal costs about one per character, so a path of ~95 characters is already too long."""
    import re2  # noqa: PLC0415 - google-re2, only where HTTP regexes are checked

    try:
        size = int(re2.compile(pattern).programsize)
    except re2.error:
        return None  # not RE2 syntax: the checks above say why
    if size > ENVOY_MAX_PROGRAM_SIZE:
        return (
            f"compiles to an RE2 program of size {size}, over Envoy's limit of {ENVOY_MAX_PROGRAM_SIZE}: "
            "Cilium would enforce none of the endpoint's L7 rules; shorten it"
        )
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


# Single values that come from workloads, as synthesis checks them before writing them into a
# rule: each returns why the value cannot be written (worded to follow the value), or None.


def label_value_problem(value: str) -> str | None:
    if len(value) > 63 or not LABEL_VALUE.fullmatch(value):
        return "is not a valid label value (at most 63 letters, digits, '-', '_' and '.')"
    return None


def namespace_problem(name: str) -> str | None:
    if len(name) > 63 or not DNS_LABEL.fullmatch(name):
        return "is not a valid namespace name (at most 63 lower-case letters, digits and '-')"
    return None


def dns_name_problem(name: str) -> str | None:
    """A name for `matchName`: a literal name, no `*` (a query for `*.example.org` is legal DNS,
    but as a rule it would be a pattern nobody asked for), not the root."""
    if not name.strip("."):
        return "is the DNS root or empty, not a name a rule can list"
    if "*" in name:
        return "contains '*', which a DNS rule would read as a wildcard"
    if len(name) > 253 or not FQDN_NAME.fullmatch(name):
        return "is not a DNS name a rule can list (letters, digits, '-', '_' and single dots, at most 253)"
    return None


def kafka_topic_problem(topic: str) -> str | None:
    if len(topic) > 249 or not KAFKA_TOPIC.fullmatch(topic):
        return "is not a Kafka topic a rule can name (at most 249 letters, digits, '.', '_' and '-')"
    return None
