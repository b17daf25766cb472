"""The least-privilege promises on every capture we have (issue #10), checked with flowgen's own
Cilium-semantics engine: the baselines never widen a workload's own rules, no near-miss probe
gets through the generated policies, and every observed request is still admitted."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowgen.check.engine import Engine, Request
from flowgen.check.probes import derive
from flowgen.check.verify import request
from flowgen.cilium import SYSTEM_NAMESPACES
from flowgen.graph.edge import Edge, settle
from flowgen.graph.evidence import GRANTING, L7Kind
from flowgen.graph.observed import Observed, load
from flowgen.policy.formats import dns_name_problem
from flowgen.policy.model import Policy
from flowgen.synth.synth import Options, Scope, synthesize
from tests.conftest import DEMO, ROOT

CAPTURES = [DEMO, *sorted((ROOT / "fixtures" / "flows" / "scenarios").glob("*.jsonl"))]
EVERYTHING = Scope.of(SYSTEM_NAMESPACES, all_namespaces=True)
BASELINES = {"flowgen-default-deny", "flowgen-baseline-host", "flowgen-baseline-dns"}


def _observed(capture: Path, tmp_path: Path) -> Observed:
    return load([str(capture)], tmp_path / "store", None, warn=lambda _message: None, samples=True)


def _writable(edge: Edge) -> bool:
    """Whether a rule can carry the request's values (hostile-values holds some that cannot:
    they are left out with a note, and their requests are refused on purpose)."""
    return not (edge.l7.kind is L7Kind.DNS and dns_name_problem(edge.l7.path))


def _requests(observed: Observed) -> tuple[list[Request], list[Request]]:
    """The observed requests (allowed evidence) and the near-miss probes next to them."""
    edges = observed.edges()
    # Evidence a policy drop contradicts (sent, then dropped at the destination) is not a request to admit.
    seen = [request(edge) for edge in settle(edges)[0] if edge.use in GRANTING and _writable(edge)]
    return seen, [probe.request for probe in derive(edges, observed.samples)]


def _widened(capture: Path, options: Options, tmp_path: Path) -> list[Request]:
    """Requests the whole output admits that the workload policies plus the host baseline
    (the one baseline documented to add something) do not."""
    observed = _observed(capture, tmp_path)
    policies = list(synthesize(observed.edges(), EVERYTHING, options).policies)
    own: list[Policy] = [p for p in policies if p.name not in BASELINES or p.name == "flowgen-baseline-host"]
    whole, narrow = Engine(policies, version=options.version), Engine(own, version=options.version)
    seen, probes = _requests(observed)
    return [r for r in (*seen, *probes) if whole.decide(r).allowed and not narrow.decide(r).allowed]


@pytest.mark.parametrize("capture", CAPTURES, ids=[c.stem for c in CAPTURES])
@pytest.mark.parametrize(
    "options",
    [
        Options(default_deny=True),
        Options(default_deny=True, clusterwide=True),
    ],
    ids=["default-deny", "clusterwide"],
)
def test_baselines_never_widen_what_the_workload_policies_allow(
    capture: Path, options: Options, tmp_path: Path
) -> None:
    """Whatever the whole output admits, the workload policies plus the host baseline admit too:
    a default deny only ever takes away."""
    assert _widened(capture, options, tmp_path) == []


def test_wide_dns_is_the_widening_it_says_it_is(tmp_path: Path) -> None:
    """The opt-in any-name DNS lifts each workload's name list: the check above sees it."""
    widened = _widened(
        ROOT / "fixtures/flows/scenarios/narrow-dns.jsonl", Options(default_deny=True, wide_dns=True), tmp_path
    )
    assert widened and {r.l7.kind for r in widened} == {L7Kind.DNS}


@pytest.mark.parametrize("capture", CAPTURES, ids=[c.stem for c in CAPTURES])
def test_no_probe_gets_through_and_every_observed_request_does(capture: Path, tmp_path: Path) -> None:
    observed = _observed(capture, tmp_path)
    options = Options(default_deny=True)
    engine = Engine(synthesize(observed.edges(), EVERYTHING, options).policies, version=options.version)
    seen, probes = _requests(observed)
    assert [r for r in seen if not engine.decide(r).allowed] == []
    assert [r for r in probes if engine.decide(r).allowed] == []
