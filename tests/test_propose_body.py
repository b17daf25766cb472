"""The pieces of `flowgen propose` that need no repository: the rule-level changes and their
evidence, the pull request body (deterministic, escaped, within the forge's size limit),
addresses and tokens, and the forge client's retries (sleeping injected, against a local
server). Also keeps docs/propose-example.md what propose writes for the demo."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flowgen.cli import app
from flowgen.errors import UsageError
from flowgen.graph.evidence import L7, L7Kind
from flowgen.policy.parsing import parse
from flowgen.propose.body import body, cell, code, commit_message, review, span, title
from flowgen.propose.changes import changes, rule_evidence
from flowgen.propose.forge import ForgeError, GitHub, GitLab, Http, retry_wait
from flowgen.propose.remote import Provider, Redactor, api_root, branch_name, parse_remote, provider_for
from flowgen.synth.options import Scope
from tests.builders import T0, edge, workload
from tests.conftest import DEMO, ROOT
from tests.forge_server import Failure
from tests.forge_server import serving as forge_serving
from tests.git_server import bare_repository

EXAMPLE = ROOT / "docs" / "propose-example.md"
UPDATE = os.environ.get("FLOWGEN_UPDATE_GOLDEN") == "1"
TOKEN = "glpat-" + "Secret42" * 3


def _policy(ingress: str = "", egress: str = "", name: str = "api") -> str:
    text = (
        f"apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: flowgen-{name}\n  namespace: shop\n"
        f"spec:\n  endpointSelector:\n    matchLabels:\n      app.kubernetes.io/name: {name}\n"
    )
    if ingress:
        text += "  ingress:\n" + ingress
    if egress:
        text += "  egress:\n" + egress
    return text


def _from(app: str, port: int, http: str = "") -> str:
    rules = f"      rules:\n        http:\n        - method: GET\n          path: {http}\n" if http else ""
    return (
        f"  - fromEndpoints:\n    - matchLabels:\n        app.kubernetes.io/name: {app}\n"
        f'    toPorts:\n    - ports:\n      - port: "{port}"\n        protocol: TCP\n{rules}'
    )


def _to_world(*ports: int) -> str:
    listed = "".join(f'      - port: "{p}"\n        protocol: TCP\n' for p in ports)
    return f"  - toCIDR:\n    - 198.51.100.7/32\n    toPorts:\n    - ports:\n{listed}"


BASE = _policy(_from("frontend", 8080) + _from("batch", 9000), _to_world(443))
NEW = _policy(_from("frontend", 8080, "/api") + _from("prometheus", 9090), _to_world(443, 8443))


def test_rule_changes_are_added_removed_narrowed_and_widened() -> None:
    found = changes(parse(BASE, "base").policies, parse(NEW, "new").policies, ["shop"])
    assert [a.rule for a in found.added] == ["CiliumNetworkPolicy/shop/flowgen-api ingress[1]"]
    assert "prometheus" in found.added[0].allows
    assert [a.rule for a in found.removed] == ["CiliumNetworkPolicy/shop/flowgen-api ingress[1]"]
    assert "batch" in found.removed[0].allows
    assert [(c.status, c.after.rule) for c in found.changed] == [
        ("narrowed", "CiliumNetworkPolicy/shop/flowgen-api ingress[0]"),
        ("widened", "CiliumNetworkPolicy/shop/flowgen-api egress[0]"),
    ]
    assert found.changed[0].after.allows == "endpoints app.kubernetes.io/name=frontend on TCP/8080 HTTP GET /api"
    assert changes(parse(NEW, "a").policies, parse(NEW, "b").policies, ["shop"]).changed == []


def test_each_added_rule_carries_the_evidence_it_admits() -> None:
    api, prometheus = workload("shop", "api"), workload("shop", "prometheus")
    edges = [
        edge(prometheus, api, port=9090, flows=7, nodes=("node-a", "node-b")),
        edge(workload("shop", "frontend"), api, port=8080, l7=L7(L7Kind.HTTP, "GET", "/api"), flows=5),
    ]
    found = rule_evidence(edges, parse(NEW, "new").policies, ["shop"])
    evidence = found["CiliumNetworkPolicy/shop/flowgen-api ingress[1]"]
    assert (evidence.flows, evidence.first, sorted(evidence.nodes)) == (7, T0, ["node-a", "node-b"])
    assert found["CiliumNetworkPolicy/shop/flowgen-api ingress[0]"].flows == 5


def _review(name: str = "prometheus", limit_edges: int = 1) -> str:
    api = workload("shop", "api")
    edges = [
        edge(workload("shop", "prometheus"), api, port=9090, flows=7, source_workload=name) for _ in range(limit_edges)
    ]
    made = review(
        scope="shop",
        branch="flowgen/shop",
        base="main",
        path="policies/shop",
        edges=edges,
        existing=parse(BASE, "base").policies,
        proposed=parse(NEW, "new").policies,
        notes=(),
        namespaces=["shop"],
        lost={"HUBBLE_RING_BUFFER": 3},
    )
    return body(made)


def test_the_body_says_what_changes_with_its_evidence_and_is_deterministic() -> None:
    text = _review()
    assert text == _review()
    assert text.startswith("<!-- flowgen-propose branch=flowgen/shop -->\n## flowgen: network policies for shop")
    assert "| Events Hubble lost | **3** (3 HUBBLE\\_RING\\_BUFFER)" in text
    rule = "| `CiliumNetworkPolicy/shop/flowgen-api ingress[1]` "
    allows = "| `endpoints app.kubernetes.io/name=prometheus on TCP/9090` "
    assert rule + allows + "| 7 | 2026-11-20 09:00 | 2026-11-20 11:00 | 1 |" in text
    assert "| narrowed |" in text and "| widened |" in text
    assert "### Removed allow rules" in text and "name=batch on TCP/9000" in text
    assert '```mermaid\nflowchart LR\n  n0["shop/api"]' in text
    assert "```diff\n--- existing/CiliumNetworkPolicy/shop/flowgen-api" in text


def test_text_from_the_cluster_cannot_format_mention_or_escape() -> None:
    assert cell("@org/team <img src=x> | *b* `c`") == "&#64;org/team &lt;img src=x&gt; \\| \\*b\\* \\`c\\`"
    assert code("a|b`c\nd") == "`a\\|b'c d`"
    hostile = _review(name="@admins ```\n<script>")
    # Only inside code (where nothing renders, links or mentions) may the text stay as it is.
    fences = re.findall(r"^(`{3,})mermaid$", hostile, flags=re.MULTILINE)
    assert fences == ["````"], "the fence outgrows the backticks inside it"
    prose = re.sub(r"^(`{3,})\w*\n.*?^\1$", "", hostile, flags=re.MULTILINE | re.DOTALL)
    prose = re.sub(r"`[^`\n]*`", "", prose)
    assert "@admins" not in prose and "<script>" not in prose


def test_the_body_is_shortened_to_the_forge_limit() -> None:
    made = review(
        scope="shop",
        branch="flowgen/shop",
        base="main",
        path="policies/shop",
        edges=[],
        existing=parse(BASE, "base").policies,
        proposed=parse(NEW, "new").policies,
        notes=(),
        namespaces=["shop"],
    )
    full = body(made)
    short = body(made, limit=len(full) - 10)
    assert len(short) < len(full) - 10
    assert "Policy diffs left out to fit the size limit" in short
    assert len(body(made, limit=1500)) <= 1500


def test_title_commit_message_and_spans() -> None:
    made = review(
        scope="shop",
        branch="flowgen/shop",
        base="main",
        path="policies/shop",
        edges=[],
        existing=parse(BASE, "base").policies,
        proposed=parse(NEW, "new").policies,
        notes=(),
        namespaces=["shop"],
    )
    assert title(made) == "flowgen: network policies for shop (1 changed)"
    message = commit_message(made)
    assert message.splitlines()[0] == "flowgen: network policies for shop"
    assert message.endswith("Generated-by: flowgen propose\nFlowgen-Branch: flowgen/shop\n")
    assert [span(datetime(2026, 1, 1, tzinfo=UTC) - datetime(2025, 12, d, tzinfo=UTC)) for d in (31, 29)] == [
        "1d 0h",
        "3d 0h",
    ]


def test_addresses_forges_and_branches() -> None:
    github = parse_remote("https://github.com/acme/gitops.git")
    assert (github.http_root, github.project) == ("https://github.com/", "acme/gitops")
    assert provider_for(github, Provider.AUTO) is Provider.GITHUB
    assert api_root(Provider.GITHUB, github, None) == "https://api.github.com"
    enterprise = parse_remote("https://git.corp.example:8443/acme/gitops")
    assert api_root(Provider.GITHUB, enterprise, None) == "https://git.corp.example:8443/api/v3"
    gitlab = parse_remote("git@gitlab.example.com:infra/net/gitops.git")
    assert (gitlab.http_root, gitlab.host, gitlab.project) == ("", "gitlab.example.com", "infra/net/gitops")
    assert api_root(Provider.GITLAB, gitlab, None) == "https://gitlab.example.com/api/v4"
    assert parse_remote("/srv/gitops.git").local
    with pytest.raises(UsageError, match="pass --provider"):
        provider_for(enterprise, Provider.AUTO)
    for leaky in ("https://x-access-token:t0k@github.com/a/b", "https://t0k@github.com/a/b"):
        with pytest.raises(UsageError, match="must not hold credentials"):
            parse_remote(leaky)
    assert branch_name(Scope.of(["shop"])) == "flowgen/shop"
    assert branch_name(Scope.of(["shop", "data"])) == "flowgen/data+shop"
    assert branch_name(Scope.of([], all_namespaces=True)) == "flowgen/all"
    assert branch_name(Scope.of(["kube-system"], all_namespaces=True)) == "flowgen/all+kube-system"


def test_the_redactor_hides_tokens_in_every_form() -> None:
    redactor = Redactor(["s3cr3t-token"])
    text = "Authorization: Basic eC1hY2Nlc3MtdG9rZW46czNjcjN0LXRva2Vu; s3cr3t-token; https://u:p@host/x"
    assert redactor.scrub(text) == "Authorization: ***; ***; https://***@host/x"


def test_retry_wait_honours_the_forges_headers() -> None:
    now = 1_000.0
    assert retry_wait({"Retry-After": "7"}, 0, now) == 7.0
    assert retry_wait({"Retry-After": "Thu, 01 Jan 1970 00:17:00 GMT"}, 0, now) == 20.0
    assert retry_wait({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1060"}, 0, now) == 61.0
    assert retry_wait({"RateLimit-Remaining": "0", "RateLimit-Reset": "1010"}, 0, now) == 11.0
    assert [retry_wait({}, attempt, now) for attempt in (0, 1, 2, 6)] == [1.0, 2.0, 4.0, 30.0]


def test_the_client_retries_rate_limits_with_the_waits_asked_for() -> None:
    sleeps: list[float] = []
    with forge_serving(TOKEN, "acme/gitops") as server:
        server.failures += [
            Failure("GET", "/pulls", 429, {"Retry-After": "7"}),
            Failure("GET", "/pulls", 403, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1060"}),
            Failure("GET", "/pulls", 503),
        ]
        http = Http(server.github, GitHub.headers(TOKEN), Redactor([TOKEN]), sleep=sleeps.append, now=lambda: 1000.0)
        assert GitHub(http, "acme/gitops").find_open("flowgen/shop") is None
        assert sleeps == [7.0, 61.0, 4.0]
        server.failures.append(Failure("GET", "/pulls", 429, {"Retry-After": "3600"}))
        with pytest.raises(ForgeError, match="gave up after 1 attempts"):
            GitHub(http, "acme/gitops").find_open("flowgen/shop")
        gitlab = GitLab(
            Http(server.gitlab, GitLab.headers(TOKEN), Redactor([TOKEN]), sleep=sleeps.append), "acme/gitops"
        )
        server.failures.append(Failure("POST", "/merge_requests", 401, {}, {"message": f"401 Unauthorized {TOKEN}"}))
        with pytest.raises(ForgeError) as refused:
            gitlab.create("flowgen/shop", "main", "t", "b")
        assert refused.value.status == 401 and TOKEN not in str(refused.value)
        assert server.violations == []
    closed = Http(server.github, {}, Redactor(), sleep=sleeps.append, attempts=2)
    with pytest.raises(ForgeError, match="after 2 attempts"):
        closed.request("GET", "/repos/acme/gitops/pulls")


def test_the_docs_example_is_what_propose_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/propose-example.md: the pull request body for the demo capture against an empty
    repository (make golden rewrites it)."""
    bare = bare_repository(tmp_path, "gitops")
    monkeypatch.chdir(ROOT)
    args = ["propose", "--repo", str(bare), "--path", "policies", "-A", "--default-deny", "--provider", "none"]
    result = CliRunner().invoke(app, [*args, "-i", str(DEMO.relative_to(ROOT)), "--dry-run"])
    assert result.exit_code == 0, result.output
    made = result.stdout.split("Pull request body:\n", 1)[1]
    head, marker, _ = EXAMPLE.read_text().partition("<!-- flowgen-propose") if EXAMPLE.exists() else ("", "", "")
    if UPDATE:
        EXAMPLE.write_text(head + made)
        return
    assert marker, f"{EXAMPLE} is missing: run make golden"
    assert EXAMPLE.read_text() == head + made, "run `make golden` and review the diff"
