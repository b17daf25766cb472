"""`flowgen propose` end to end with real parts: a git remote on loopback (git's smart HTTP
through `git http-backend`, asking for the token) that the runs push to and the tests read
back, and a local forge server implementing the GitHub and GitLab endpoints flowgen calls,
checking each request's auth header and JSON body."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from flowgen.cli import app
from flowgen.propose import git as git_module
from tests.conftest import DEMO, ROOT
from tests.forge_server import Failure, ForgeServer
from tests.forge_server import serving as forge_serving
from tests.git_server import GitServer, bare_repository, git
from tests.git_server import serving as git_serving

TOKEN = "ghp_" + "Zq7Secret" * 4
PROJECT = "acme/gitops"
BRANCH = "flowgen/shop"
runner = CliRunner()


@pytest.fixture
def remote(tmp_path: Path) -> Iterator[GitServer]:
    root = tmp_path / "remotes"
    root.mkdir()
    bare_repository(root, "gitops")
    with git_serving(root, TOKEN) as server:
        yield server


@pytest.fixture
def forge(remote: GitServer) -> Iterator[ForgeServer]:
    with forge_serving(TOKEN, PROJECT) as server:
        server.head_of = lambda branch: _head(remote, branch)
        yield server


def _without(tmp_path: Path, word: str) -> Path:
    """The demo capture less the lines that mention `word` (evidence that lacks one edge)."""
    less = tmp_path / f"demo-without-{word}.jsonl"
    less.write_text("".join(line for line in DEMO.read_text().splitlines(keepends=True) if word not in line))
    return less


def propose(
    remote: GitServer, forge: ForgeServer, *extra: str, evidence: Path = DEMO, env: dict[str, str] | None = None
) -> Result:
    args = [
        "propose",
        "--repo",
        remote.url("gitops"),
        "--path",
        "policies/shop",
        "-n",
        "shop",
        "-i",
        str(evidence),
        "--provider",
        "github",
        "--api-url",
        forge.github,
        "--project",
        PROJECT,
        *extra,
    ]
    return runner.invoke(app, args, env={"GITHUB_TOKEN": TOKEN, **(env or {})})


def _head(remote: GitServer, branch: str = BRANCH) -> str:
    out = git("ls-remote", str(remote.root / "gitops.git"), f"refs/heads/{branch}")
    return out.split("\t", 1)[0]


def _files(remote: GitServer, ref: str) -> list[str]:
    listed = git("--git-dir", str(remote.root / "gitops.git"), "ls-tree", "-r", "--name-only", ref, "--", "policies")
    return listed.split()


def _merge(remote: GitServer, tmp_path: Path) -> None:
    """A reviewer merges flowgen's branch into main (a merge commit, as the forge's button makes)."""
    clone = tmp_path / "reviewer"
    git("clone", "--quiet", str(remote.root / "gitops.git"), str(clone))
    git("fetch", "--quiet", "origin", BRANCH, cwd=clone)
    git("merge", "--quiet", "--no-ff", "-m", "Merge flowgen/shop", "FETCH_HEAD", cwd=clone)
    git("push", "--quiet", "origin", "main", cwd=clone)


def _ok(result: Result) -> None:
    assert result.exit_code == 0, result.output + (result.stderr if result.stderr_bytes else "")


def test_first_run_pushes_the_branch_and_opens_one_pull_request(remote: GitServer, forge: ForgeServer) -> None:
    result = propose(remote, forge)
    _ok(result)
    assert "Opened pull request #1" in result.stdout
    head = _head(remote)
    assert head
    assert "policies/shop/shop.flowgen-api.yaml" in _files(remote, BRANCH)
    assert "policies/shop/kustomization.yaml" in _files(remote, BRANCH)
    message = git("--git-dir", str(remote.root / "gitops.git"), "log", "-1", "--format=%B", BRANCH)
    assert "Generated-by: flowgen propose" in message
    # One pull request, with the documented request shape and the review as its body.
    assert forge.violations == []
    (pull,) = forge.pulls.values()
    assert pull["head"]["ref"] == BRANCH and pull["base"]["ref"] == "main"
    assert pull["title"] == "flowgen: network policies for shop (4 added)"
    assert "### Added allow rules and the evidence behind them" in pull["body"]
    assert "```mermaid" in pull["body"]
    posts = [c for c in forge.calls if c.method == "POST"]
    assert [c.path for c in posts] == ["/api/v3/repos/acme/gitops/pulls"]
    assert set(posts[0].body) == {"title", "head", "base", "body"}
    assert all(c.headers["authorization"] == f"Bearer {TOKEN}" for c in forge.calls)
    # git sent the token (HTTP Basic) to the git server, and only there.
    assert remote.refused == 0 and all(a.startswith("Basic ") for a in remote.authorizations)


def test_a_second_run_on_the_same_evidence_proposes_nothing_new(remote: GitServer, forge: ForgeServer) -> None:
    _ok(propose(remote, forge))
    head, calls = _head(remote), len(forge.calls)
    again = propose(remote, forge)
    _ok(again)
    assert "proposes this already" in again.stdout
    assert "is up to date" in again.stdout
    assert _head(remote) == head
    assert [c.method for c in forge.calls[calls:]] == ["GET"]
    assert len(forge.pulls) == 1


def test_changed_evidence_updates_the_open_pull_request(remote: GitServer, forge: ForgeServer, tmp_path: Path) -> None:
    _ok(propose(remote, forge, evidence=_without(tmp_path, "nightly-report")))
    first_head = _head(remote)
    (pull,) = forge.pulls.values()
    assert "nightly-report" not in pull["body"]
    updated = propose(remote, forge)
    _ok(updated)
    assert "Updated pull request #1" in updated.stdout
    assert _head(remote) != first_head
    # Rebuilt on main, not stacked: the branch is one flowgen commit ahead of main.
    ahead = git("--git-dir", str(remote.root / "gitops.git"), "rev-list", "--count", f"main..{BRANCH}")
    assert ahead.strip() == "1"
    assert len(forge.pulls) == 1
    assert "nightly-report" in forge.pulls[1]["body"]
    assert [c.method for c in forge.writes()] == ["POST", "PATCH"]
    assert forge.violations == []


def test_a_merged_pull_request_leaves_nothing_to_propose(remote: GitServer, forge: ForgeServer, tmp_path: Path) -> None:
    _ok(propose(remote, forge))
    _merge(remote, tmp_path)
    forge.close(1, merged=True)
    writes = len(forge.writes())
    after = propose(remote, forge)
    _ok(after)
    assert "Nothing to propose: main already has these policies" in after.stdout
    assert len(forge.writes()) == writes and len(forge.pulls) == 1


def test_a_pull_request_made_moot_is_closed_with_a_comment(
    remote: GitServer, forge: ForgeServer, tmp_path: Path
) -> None:
    _ok(propose(remote, forge))
    _merge(remote, tmp_path)  # main got the change, but the pull request is still open
    after = propose(remote, forge)
    _ok(after)
    assert "Closed pull request #1" in after.stdout
    assert forge.pulls[1]["state"] == "closed"
    assert "already has the policies this proposed" in forge.comments[1][0]
    assert forge.violations == []


def test_a_proposal_closed_without_merging_is_not_opened_again(
    remote: GitServer, forge: ForgeServer, tmp_path: Path
) -> None:
    _ok(propose(remote, forge, evidence=_without(tmp_path, "nightly-report")))
    forge.close(1, merged=False)
    again = propose(remote, forge, evidence=_without(tmp_path, "nightly-report"))
    _ok(again)
    assert "closed without merging" in again.stdout
    assert len(forge.pulls) == 1
    changed = propose(remote, forge)
    _ok(changed)
    assert "Opened pull request #2" in changed.stdout


def test_a_concurrent_run_is_detected_and_opens_no_second_pull_request(
    remote: GitServer, forge: ForgeServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Another run (a real `flowgen propose` process) pushes the branch and opens the pull request
    between this run's read of the branch and its push: the lease refuses the push, this run reads
    the branch again, finds its change proposed, and opens nothing."""
    push = git_module.Git.push
    other: list[subprocess.CompletedProcess[str]] = []

    def racing_push(self: git_module.Git, branch: str, expected: str | None) -> None:
        if not other:
            flowgen = Path(sys.executable).parent / "flowgen"
            args = [str(flowgen), "propose", "--repo", remote.url("gitops"), "--path", "policies/shop", "-n", "shop"]
            args += ["-i", str(DEMO), "--provider", "github", "--api-url", forge.github, "--project", PROJECT]
            env = {**os.environ, "GITHUB_TOKEN": TOKEN, "FLOWGEN_STORE": str(tmp_path / "other-store")}
            other.append(subprocess.run(args, capture_output=True, text=True, env=env, cwd=ROOT, check=False))
        push(self, branch, expected)

    monkeypatch.setattr(git_module.Git, "push", racing_push)
    result = propose(remote, forge)
    _ok(result)
    assert other[0].returncode == 0, other[0].stderr
    assert "Opened pull request #1" in other[0].stdout
    assert "moved on" in result.stdout and "reading it again" in result.stdout
    assert "proposes this already" in result.stdout
    assert len(forge.pulls) == 1
    assert [c.method for c in forge.writes()] == ["POST"]


def test_commits_someone_else_pushed_to_the_branch_are_not_overwritten(
    remote: GitServer, forge: ForgeServer, tmp_path: Path
) -> None:
    _ok(propose(remote, forge, evidence=_without(tmp_path, "nightly-report")))
    clone = tmp_path / "colleague"
    git("clone", "--quiet", "--branch", BRANCH, str(remote.root / "gitops.git"), str(clone))
    (clone / "policies" / "shop" / "NOTES.md").write_text("hand-written\n")
    git("add", "--all", cwd=clone)
    git("commit", "--quiet", "-m", "A note for the reviewers", cwd=clone)
    git("push", "--quiet", "origin", BRANCH, cwd=clone)
    theirs = _head(remote)
    result = propose(remote, forge)
    assert result.exit_code == 1
    assert "commits flowgen did not make" in result.stderr
    assert _head(remote) == theirs


def test_a_branch_updated_with_the_base_is_still_flowgens(
    remote: GitServer, forge: ForgeServer, tmp_path: Path
) -> None:
    """The forge's "update branch" button merges the base into the branch: nothing of anyone's own."""
    _ok(propose(remote, forge, evidence=_without(tmp_path, "nightly-report")))
    clone = tmp_path / "maintainer"
    git("clone", "--quiet", str(remote.root / "gitops.git"), str(clone))
    (clone / "CODEOWNERS").write_text("* @acme/platform\n")
    git("add", "--all", cwd=clone)
    git("commit", "--quiet", "-m", "Add owners", cwd=clone)
    git("push", "--quiet", "origin", "main", cwd=clone)
    git("checkout", "--quiet", "-b", "update", f"origin/{BRANCH}", cwd=clone)
    git("merge", "--quiet", "--no-ff", "-m", "Merge branch 'main' into flowgen/shop", "main", cwd=clone)
    git("push", "--quiet", "origin", f"HEAD:{BRANCH}", cwd=clone)
    updated = propose(remote, forge)
    _ok(updated)
    assert "Updated pull request #1" in updated.stdout


def test_a_refused_push_is_a_clear_error(remote: GitServer, forge: ForgeServer) -> None:
    hook = remote.root / "gitops.git" / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'protected: flowgen/* needs a signed commit' >&2\nexit 1\n")
    hook.chmod(0o755)
    result = propose(remote, forge)
    assert result.exit_code == 1
    assert "Error: git push to flowgen/shop" in result.stderr
    assert "protected: flowgen/* needs a signed commit" in result.stderr
    assert TOKEN not in result.output + result.stderr
    assert forge.writes() == [] and _head(remote) == ""


def test_a_wrong_token_is_refused_without_showing_it(remote: GitServer, forge: ForgeServer) -> None:
    wrong = "ghp_" + "WrongWrong" * 4
    traced = {"GITHUB_TOKEN": wrong, "GIT_TRACE": "1", "GIT_CURL_VERBOSE": "1", "GIT_TRACE_REDACT": "0"}
    result = propose(remote, forge, env=traced)
    assert result.exit_code == 1
    assert "Error: git ls-remote failed" in result.stderr
    assert "Authorization: ***" in result.stderr  # git's own trace, scrubbed by flowgen
    assert wrong not in result.output + result.stderr


def test_rate_limits_and_server_errors_are_retried(remote: GitServer, forge: ForgeServer) -> None:
    forge.failures += [
        Failure("GET", "/pulls", 403, {"x-ratelimit-remaining": "0", "retry-after": "0"}, {"message": "rate limit"}),
        Failure("POST", "/pulls", 429, {"retry-after": "0"}, {"message": "slow down"}),
        Failure("POST", "/pulls", 502, {"retry-after": "0"}, {"message": "Server Error"}),
    ]
    result = propose(remote, forge)
    _ok(result)
    assert forge.failures == []
    assert [c.method for c in forge.calls] == ["GET", "GET", "POST", "POST", "POST"]
    assert len(forge.pulls) == 1


def test_the_token_never_reaches_output_logs_or_disk(remote: GitServer, forge: ForgeServer, tmp_path: Path) -> None:
    work = tmp_path / "work"
    forge.failures.append(Failure("POST", "/pulls", 401, {}, {"message": f"Bad credentials: {TOKEN}"}))
    failed = propose(remote, forge, "--work-dir", str(work), env={"GIT_TRACE": "1", "GIT_CURL_VERBOSE": "1"})
    assert failed.exit_code == 1
    assert "Bad credentials: ***" in failed.stderr
    again = propose(remote, forge, "--work-dir", str(work), "--dry-run")
    for result in (failed, again):
        assert TOKEN not in result.output + result.stderr
    config = (work / ".git" / "config").read_text()
    assert remote.url("gitops") in config and TOKEN not in config
    for folder in (work, remote.root):
        for path in folder.rglob("*"):
            if path.is_file():
                assert TOKEN.encode() not in path.read_bytes(), path
    assert all(TOKEN not in str(c.body) for c in forge.calls)


def test_dry_run_prints_the_proposal_and_touches_nothing_remote(remote: GitServer, forge: ForgeServer) -> None:
    result = propose(remote, forge, "--dry-run")
    _ok(result)
    assert result.stdout.startswith("Branch: flowgen/shop\n")
    assert "Commit message:\n    flowgen: network policies for shop\n" in result.stdout
    assert "Pull request body:\n<!-- flowgen-propose branch=flowgen/shop -->" in result.stdout
    assert forge.calls == [] and _head(remote) == ""


def test_provider_none_pushes_the_branch_only(remote: GitServer, forge: ForgeServer) -> None:
    args = ["propose", "--repo", remote.url("gitops"), "--path", "policies/shop", "-n", "shop", "-i", str(DEMO)]
    result = runner.invoke(app, [*args, "--provider", "none", "--token-file", "-"], input=TOKEN)
    _ok(result)
    assert _head(remote) and forge.calls == []


def test_gitlab_merge_requests(remote: GitServer, tmp_path: Path) -> None:
    with forge_serving(TOKEN, "infra/net/gitops") as gitlab:
        token_file = tmp_path / "token"
        token_file.write_text(TOKEN + "\n")
        args = ["propose", "--repo", remote.url("gitops"), "--path", "policies/shop", "-n", "shop"]
        args += ["--provider", "gitlab", "--api-url", gitlab.gitlab, "--project", "infra/net/gitops"]
        args += ["--token-file", str(token_file)]
        _ok(runner.invoke(app, [*args, "-i", str(_without(tmp_path, "nightly-report"))], env={"GITLAB_TOKEN": ""}))
        _ok(runner.invoke(app, [*args, "-i", str(DEMO)], env={"GITLAB_TOKEN": ""}))
        _merge(remote, tmp_path)
        closed = runner.invoke(app, [*args, "-i", str(DEMO)], env={"GITLAB_TOKEN": ""})
        _ok(closed)
    assert gitlab.violations == []
    assert [(c.method, c.path.rsplit("merge_requests", 1)[1]) for c in gitlab.writes()] == [
        ("POST", ""),
        ("PUT", "/1"),
        ("POST", "/1/notes"),
        ("PUT", "/1"),
    ]
    create = gitlab.writes()[0].body
    assert create["source_branch"] == BRANCH and create["target_branch"] == "main"
    assert create["description"].startswith("<!-- flowgen-propose")
    assert all(c.headers["private-token"] == TOKEN for c in gitlab.calls)
    assert gitlab.pulls[1]["state"] == "closed"
    assert [c.query["state"] for c in gitlab.calls if c.method == "GET"] == ["opened"] * 3


def test_a_folder_holding_other_namespaces_policies_is_refused(forge: ForgeServer, tmp_path: Path) -> None:
    data = "# Generated by flowgen.\napiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\n"
    data += "metadata:\n  name: flowgen-kafka\n  namespace: data\nspec:\n  endpointSelector: {}\n"
    bare = bare_repository(tmp_path, "mixed", {"policies/data.flowgen-kafka.yaml": data})
    args = ["propose", "--repo", str(bare), "--path", "policies", "-n", "shop", "-i", str(DEMO), "--provider", "none"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert "holds flowgen's policies for data" in result.stderr


def test_a_token_in_the_repository_url_is_refused(forge: ForgeServer) -> None:
    args = ["propose", "--repo", f"https://x:{TOKEN}@github.com/acme/gitops", "--path", "p", "-n", "shop"]
    result = runner.invoke(app, [*args, "-i", str(DEMO)])
    assert result.exit_code == 2
    assert "must not hold credentials" in result.stderr and TOKEN not in result.stderr
