"""One `flowgen propose` run against the repository and the forge.

1. Read the remote's heads (the base and flowgen's branch) and fetch them.
2. Check the base out, write the proposed policies into `--path` (as `generate -d`
   would), and read the folder back: that is what the commit would hold.
3. Compare, comments aside: the base with the new folder (nothing differs: nothing to
   propose, and an open pull request for the branch is closed with a comment, its change
   merged or moot), and flowgen's branch with the new folder (nothing differs: the branch
   proposes this already, no push).
4. Otherwise commit on top of the base and push flowgen's branch with a lease on the commit
   read in step 1. A branch that moved meanwhile (a concurrent run) is read again from
   step 1; commits on the branch that flowgen did not make are never overwritten.
5. Open the pull request, or update the open one when its title or body differ; a forge
   that says one exists already (a concurrent run opened it) has it looked up, not doubled.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from flowgen.check.diff import file_diffs
from flowgen.errors import InputError, UsageError
from flowgen.policy.folder import MARK, read_policies, write_policies
from flowgen.policy.model import Kind, Policy
from flowgen.policy.parsing import parse
from flowgen.propose.body import TRAILER, Review, body, commit_message, title
from flowgen.propose.forge import ConflictError, Forge, PullRequest
from flowgen.propose.git import Git, LeaseError
from flowgen.synth.options import Scope

# How often a branch that keeps moving under flowgen is read again before giving up.
ATTEMPTS = 3
Describe = Callable[[Sequence[Policy], Sequence[Policy]], Review]


@dataclass(frozen=True)
class Plan:
    path: str
    base: str
    branch: str
    scope: Scope
    dry_run: bool = False


@dataclass
class Outcome:
    # "nothing" (the base has it), "closed", "current" (already proposed), "proposed", "dry-run".
    status: str
    branch: str
    lines: list[str] = field(default_factory=list)
    commit: str = ""
    pull: PullRequest | None = None
    # What would be (or was) proposed.
    message: str = ""
    title: str = ""
    body: str = ""


def folder_path(text: str) -> str:
    """`--path` as a clean path inside the repository."""
    path = PurePosixPath(text.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or not path.parts or path.parts[0] == ".git" or str(path) == ".":
        raise UsageError(
            f"--path {text}: give a folder inside the repository (relative, without ..), e.g. policies/shop"
        )
    return str(path)


def _same(left: Sequence[Policy], right: Sequence[Policy]) -> bool:
    """Whether two policy sets say the same to Cilium (comments aside)."""
    return all(f.status == "unchanged" for f in file_diffs(left, right, set()))


def _parsed(found: dict[str, str]) -> list[Policy]:
    policies: list[Policy] = []
    for name, text in found.items():
        if name.endswith((".yaml", ".yml")) and not name.endswith("kustomization.yaml"):
            policies.extend(parse(text, name).policies)
    return policies


def _check_scope(found: dict[str, str], scope: Scope, path: str) -> None:
    """flowgen's files for namespaces outside the scope would be dropped as stale: refuse."""
    outside = sorted(
        {
            p.namespace
            for name, text in found.items()
            if text.startswith(MARK) and name.endswith((".yaml", ".yml"))
            for p in parse(text, name).policies
            if p.kind is Kind.CNP and p.namespace and not scope.covers(p.namespace)
        }
    )
    if outside:
        raise InputError(
            f"{path} holds flowgen's policies for {', '.join(outside)}, outside this run's namespaces; writing "
            "would remove them. Give each scope its own --path (e.g. policies/<namespace>), or widen -n / -A"
        )


def _foreign(git: Git, base: str, branch: str) -> list[str]:
    """Commits on flowgen's branch that flowgen did not make."""
    commits = git.log(f"refs/remotes/origin/{base}", f"refs/remotes/origin/{branch}")
    return [f"{c.sha[:12]} by {c.author}" for c in commits if TRAILER not in c.message]


def _normal(text: str) -> str:
    return text.replace("\r\n", "\n").strip()


def propose(plan: Plan, git: Git, forge: Forge | None, proposed: Sequence[Policy], describe: Describe) -> Outcome:
    """Propose `proposed` for `plan`'s scope; `describe(base, new)` makes the review."""
    git.prepare()
    said: list[str] = []
    for _attempt in range(ATTEMPTS):
        outcome = _attempt_once(plan, git, forge, proposed, describe, said=said)
        if outcome is not None:
            return outcome
    raise LeaseError(f"{plan.branch} kept moving while flowgen pushed it ({ATTEMPTS} attempts); run again later")


def _attempt_once(
    plan: Plan, git: Git, forge: Forge | None, proposed: Sequence[Policy], describe: Describe, *, said: list[str]
) -> Outcome | None:
    """One read-decide-push round; None when the branch moved meanwhile (`said` tells)."""
    heads = git.heads(plan.base, plan.branch)
    if plan.base not in heads:
        raise InputError(f"the repository has no branch {plan.base}: check --base")
    git.fetch(sorted(heads))
    base_ref = f"refs/remotes/origin/{plan.base}"
    base_files = git.files(base_ref, plan.path)
    _check_scope(base_files, plan.scope, plan.path)
    base_policies = _parsed(base_files)
    git.checkout(base_ref)
    folder = git.work / plan.path
    write_policies(folder, proposed)
    new_policies, _skipped = read_policies([folder])
    review = describe(base_policies, new_policies)
    outcome = Outcome("", plan.branch, said, message=commit_message(review), title=title(review), body=body(review))
    current = heads.get(plan.branch)
    foreign = _foreign(git, plan.base, plan.branch) if current else []
    if _same(base_policies, new_policies):
        return _nothing(plan, forge, outcome, foreign)
    if foreign:
        raise InputError(
            f"{plan.branch} has commits flowgen did not make ({', '.join(foreign)}); flowgen does not overwrite "
            "them. Merge or close its pull request and delete the branch, and the next run proposes afresh"
        )
    branch_policies = _parsed(git.files(f"refs/remotes/origin/{plan.branch}", plan.path)) if current else None
    up_to_date = branch_policies is not None and _same(branch_policies, new_policies)
    if plan.dry_run:
        outcome.status = "dry-run"
        outcome.lines.append(
            f"Would leave {plan.branch} as it is: it proposes this already"
            if up_to_date
            else f"Would push {plan.branch} (on top of {plan.base}) and open or update its pull request"
        )
        return outcome
    if up_to_date:
        outcome.status = "current"
        outcome.commit = current or ""
        outcome.lines.append(f"{plan.branch} proposes this already ({(current or '')[:12]}); nothing new to push")
    else:
        outcome.commit = git.commit(plan.path, outcome.message)
        try:
            git.push(plan.branch, current)
        except LeaseError as problem:
            said.append(f"{problem}; reading it again")
            return None
        outcome.status = "proposed"
        outcome.lines.append(f"Pushed {outcome.commit[:12]} to {plan.branch}: {outcome.title}")
    if forge is not None:
        _open_or_update(plan, forge, outcome, pushed=outcome.status == "proposed")
    return outcome


def _nothing(plan: Plan, forge: Forge | None, outcome: Outcome, foreign: list[str]) -> Outcome:
    outcome.status = "nothing"
    outcome.lines.append(f"Nothing to propose: {plan.base} already has these policies in {plan.path}")
    if plan.dry_run or forge is None:
        return outcome
    pull = forge.find_open(plan.branch)
    if pull is None:
        return outcome
    if foreign:
        outcome.lines.append(
            f"Left pull request #{pull.number} open: {plan.branch} has commits flowgen did not make "
            f"({', '.join(foreign)})"
        )
        return outcome
    forge.close(
        pull,
        f"Closing: `{plan.base}` already has the policies this proposed (the change was merged, or made another "
        "way). flowgen opens a new pull request when the evidence calls for a change.",
    )
    outcome.status, outcome.pull = "closed", pull
    outcome.lines.append(f"Closed pull request #{pull.number} ({pull.url}): its change is in {plan.base}")
    return outcome


def _open_or_update(plan: Plan, forge: Forge, outcome: Outcome, *, pushed: bool) -> None:
    """Open the pull request, or update the open one; a proposal a reviewer closed without
    merging is not opened again until the evidence changes it (a new push)."""
    pull = forge.find_open(plan.branch)
    if pull is None and not pushed and (closed := forge.rejected(plan.branch, outcome.commit)) is not None:
        outcome.lines.append(
            f"Pull request #{closed.number} proposing exactly this was closed without merging ({closed.url}); "
            "flowgen proposes again when the evidence changes the policies"
        )
        return
    if pull is None:
        try:
            pull = forge.create(plan.branch, plan.base, outcome.title, outcome.body)
            outcome.lines.append(f"Opened pull request #{pull.number}: {pull.url}")
            outcome.pull = pull
            return
        except ConflictError:
            # A concurrent run opened it between the look-up and the create.
            pull = forge.find_open(plan.branch)
            if pull is None:
                raise
    if _normal(pull.title) != _normal(outcome.title) or _normal(pull.body) != _normal(outcome.body):
        pull = forge.update(pull, outcome.title, outcome.body)
        outcome.lines.append(f"Updated pull request #{pull.number}: {pull.url}")
    else:
        outcome.lines.append(f"Pull request #{pull.number} is up to date: {pull.url}")
    outcome.pull = pull


@contextlib.contextmanager
def work_folder(given: Path | None) -> Iterator[Path]:
    """`given`, or a temporary folder removed afterwards."""
    if given is not None:
        yield given
        return
    with tempfile.TemporaryDirectory(prefix="flowgen-propose-") as folder:
        yield Path(folder)
