"""What a caller can tune about synthesis: the Cilium release written for, how much L7 to
write, how outside addresses are named, and the thresholds past which evidence generalizes."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from flowgen.cilium import DEFAULT_RELEASE, SYSTEM_NAMESPACES, Release


class L7Mode(enum.StrEnum):
    NONE = "none"
    HTTP = "http"
    ALL = "all"


class WorldMode(enum.StrEnum):
    """How egress to an outside address without a DNS name is written."""

    CIDR = "cidr"
    ENTITY = "entity"


@dataclass(frozen=True, slots=True)
class Options:
    version: Release = DEFAULT_RELEASE
    l7: L7Mode = L7Mode.ALL
    world: WorldMode = WorldMode.CIDR
    # Distinct public client networks (/24, /48) on one port from which ingress becomes `fromEntities: [world]`.
    world_networks: int = 3
    # Names under one parent past which they collapse to `*.parent`.
    dns_collapse: int = 10
    # Distinct path rules per peer, port and method past which paths collapse by first segment.
    path_collapse: int = 20
    # Workloads with fewer flows, or seen for less time, are reported as thinly evidenced.
    min_flows: int = 10
    min_span: timedelta = timedelta(hours=1)
    default_deny: bool = False
    clusterwide: bool = False
    # Baselines let every pod look up any name through the cluster DNS (lifts each workload's name list).
    wide_dns: bool = False
    # Shown in every file's header: how to regenerate it.
    command: str = "flowgen generate"


@dataclass(frozen=True, slots=True)
class Scope:
    """Whose policies to write: the `named` namespaces (-n), and with `all_namespaces` (-A)
    every namespace seen except the system ones; -A and -n together are the union."""

    named: frozenset[str] = frozenset()
    all_namespaces: bool = False

    @classmethod
    def of(cls, named: Iterable[str] = (), *, all_namespaces: bool = False) -> Scope:
        return cls(frozenset(named), all_namespaces)

    def covers(self, namespace: str) -> bool:
        return namespace in self.named or (self.all_namespaces and namespace not in SYSTEM_NAMESPACES)

    def within(self, namespaces: Iterable[str]) -> list[str]:
        """The namespaces of `namespaces` this scope covers, sorted."""
        return sorted({n for n in namespaces if n and self.covers(n)})
