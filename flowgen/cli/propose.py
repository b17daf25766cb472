"""flowgen propose: regenerate the policies of a scope in a GitOps repository and propose the
change as a pull (merge) request. The library is imported when the command runs."""

from __future__ import annotations

import enum
import os
import shlex
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from flowgen.cli.console import (
    DEFAULT_RELEASE_TEXT,
    AllowPartialOption,
    CiliumVersionOption,
    InputOption,
    SinceOption,
    StoreOption,
    default_store,
    err,
    errors_boundary,
    observed,
    out,
    parse_release,
    typed,
    write,
)
from flowgen.cli.timespec import parse_since
from flowgen.errors import InputError, UsageError
from flowgen.synth.options import L7Mode, Scope

if TYPE_CHECKING:
    from flowgen.cilium import Release
    from flowgen.policy.model import Policy
    from flowgen.propose.body import Review
    from flowgen.propose.forge import Forge
    from flowgen.propose.remote import Provider, Remote
    from flowgen.propose.workflow import Outcome, Plan


class ProviderChoice(enum.StrEnum):
    auto = "auto"
    github = "github"
    gitlab = "gitlab"
    none = "none"


# The options that shape the policies: the header of each file names them (how to regenerate it).
_SHAPING = ("namespace", "all_namespaces", "since", "cilium_version", "l7", "default_deny", "wide_dns", "path")


def _command(context: typer.Context) -> str:
    """`flowgen propose` with the typed options that shape the policies, in a fixed order."""
    words = ["flowgen", context.info_name or "propose"]
    params = {param.name: param for param in context.command.params}
    for name in _SHAPING:
        param, value = params[name], context.params.get(name)
        if not typed(context, name) or value == param.default or value in (None, [], ()):
            continue
        flag = max(param.opts, key=len)
        if getattr(param, "is_flag", False):
            words.append(flag)
            continue
        for item in value if isinstance(value, list | tuple) else [value]:
            words += [flag, shlex.quote(str(item.value if isinstance(item, enum.Enum) else item))]
    return " ".join(words)


def _token(provider: Provider, token_file: Path | None, dry_run: bool) -> str | None:
    """The forge token: from --token-file, else the provider's variable (GITHUB_TOKEN, GITLAB_TOKEN)."""
    from flowgen.propose.remote import TOKEN_VARIABLE  # noqa: PLC0415

    if token_file is not None:
        try:
            token = (sys.stdin.read() if str(token_file) == "-" else token_file.read_text()).strip()
        except (OSError, UnicodeDecodeError) as problem:
            raise InputError(
                f"cannot read --token-file {token_file}: {getattr(problem, 'strerror', problem)}"
            ) from None
        if not token:
            raise InputError(f"--token-file {token_file} is empty: put the token in it")
        return token
    variable = TOKEN_VARIABLE.get(provider)
    token = os.environ.get(variable, "").strip() if variable else ""
    if variable and not token and not dry_run:
        raise UsageError(
            f"opening a {provider} pull request needs a token: set {variable} or pass --token-file FILE "
            "(never a flag: it would show in the process list and the shell history)"
        )
    return token or None


def _remote(repo: str) -> Remote:
    from flowgen.propose.remote import parse_remote  # noqa: PLC0415

    remote = parse_remote(repo)
    if remote.local and not remote.url.startswith("file://"):
        path = Path(remote.url).expanduser()
        if not path.exists():
            raise InputError(f"--repo {repo}: no such repository (give a URL or the path of a git repository)")
        remote = parse_remote(str(path.resolve()))
    return remote


def _forge(provider: Provider, remote: Remote, api_url: str | None, project: str | None, token: str) -> Forge:
    from flowgen.propose.forge import GitHub, GitLab, Http  # noqa: PLC0415
    from flowgen.propose.remote import Provider, Redactor, api_root, project_for  # noqa: PLC0415

    root, name = api_root(provider, remote, api_url), project_for(remote, project)
    if provider is Provider.GITHUB:
        return GitHub(Http(root, GitHub.headers(token), Redactor([token])), name)
    return GitLab(Http(root, GitLab.headers(token), Redactor([token])), name)


def _author(text: str) -> tuple[str, str]:
    name, _, email = text.partition("<")
    if not name.strip() or not email.endswith(">") or "@" not in email:
        raise UsageError(f"--author {text!r}: write it as 'NAME <EMAIL>'")
    return name.strip(), email[:-1].strip()


def propose(
    context: typer.Context,
    repo: Annotated[
        str,
        typer.Option("--repo", metavar="URL|PATH", help="The GitOps repository (HTTPS or SSH URL, or a local path)."),
    ],
    path: Annotated[
        str,
        typer.Option(
            "--path",
            metavar="DIR",
            help="The folder in the repository flowgen owns for this scope (files it wrote are replaced).",
        ),
    ],
    base: Annotated[str, typer.Option("--base", metavar="BRANCH", help="The branch to propose to.")] = "main",
    namespace: Annotated[
        list[str] | None,
        typer.Option("--namespace", "-n", metavar="NS", help="Propose the policies of this namespace (repeatable)."),
    ] = None,
    all_namespaces: Annotated[
        bool,
        typer.Option("--all-namespaces", "-A", help="Every namespace seen except the system ones; -n adds to it."),
    ] = False,
    input_file: InputOption = None,
    store: StoreOption = None,
    since: SinceOption = None,
    allow_partial: AllowPartialOption = False,
    provider: Annotated[
        ProviderChoice,
        typer.Option(
            "--provider",
            metavar="FORGE",
            help="github, gitlab, none (push the branch, open no pull request) or auto (from --repo's host).",
        ),
    ] = ProviderChoice.auto,
    api_url: Annotated[
        str | None,
        typer.Option("--api-url", metavar="URL", help="The forge's API root (GitHub Enterprise: https://HOST/api/v3)."),
    ] = None,
    project: Annotated[
        str | None,
        typer.Option("--project", metavar="OWNER/NAME", help="The project on the forge (default: from --repo)."),
    ] = None,
    token_file: Annotated[
        Path | None,
        typer.Option(
            "--token-file",
            metavar="FILE",
            help="Read the forge token from FILE (- reads stdin; default: GITHUB_TOKEN / GITLAB_TOKEN).",
        ),
    ] = None,
    work_dir: Annotated[
        Path | None,
        typer.Option(
            "--work-dir", metavar="DIR", help="Keep the clone in DIR between runs (default: a temporary one)."
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Print the branch, commit message and pull request; push and open nothing."),
    ] = False,
    author: Annotated[
        str, typer.Option("--author", metavar="'NAME <EMAIL>'", help="Who the commits are by.")
    ] = "flowgen <flowgen@noreply.invalid>",
    cilium_version: CiliumVersionOption = DEFAULT_RELEASE_TEXT,
    l7: Annotated[
        L7Mode,
        typer.Option("--l7", metavar="WHICH", help="Which L7 rules to write where L7 was seen: all, http or none."),
    ] = L7Mode.ALL,
    default_deny: Annotated[
        bool, typer.Option("--default-deny", help="Add a default deny per namespace in scope; it allows nothing.")
    ] = False,
    wide_dns: Annotated[
        bool, typer.Option("--wide-dns", help="Let the default deny allow any DNS name through the cluster DNS.")
    ] = False,
) -> None:
    """Propose the regenerated policies as a pull request (or merge request).

    Fetches the repository, regenerates the scope's policies into --path, and
    when anything changed (comments aside) commits on the branch flowgen/<ns>
    (flowgen/all for -A), pushes it and opens or updates its pull request,
    whose body is the review: what is added, narrowed and removed, the evidence
    behind each rule, verify's result and the graph. Nothing changed: nothing
    is pushed. A pull request whose change is in --base already is closed.
    The token comes from GITHUB_TOKEN / GITLAB_TOKEN or --token-file.

    Example:

    \b
        flowgen propose --repo git@github.com:acme/gitops.git --path shop -n shop
        flowgen propose --repo ./gitops --path pol -A --provider none --dry-run
    """
    with errors_boundary():
        from flowgen.propose.git import Git, git_version  # noqa: PLC0415
        from flowgen.propose.remote import GIT_USER, Provider, Redactor, branch_name, provider_for  # noqa: PLC0415
        from flowgen.propose.workflow import Plan, folder_path, work_folder  # noqa: PLC0415
        from flowgen.propose.workflow import propose as run  # noqa: PLC0415

        if not namespace and not all_namespaces:
            raise UsageError("say which workloads to propose policies for: -n NAMESPACE (repeatable) or -A")
        if wide_dns and not default_deny:
            raise UsageError("--wide-dns widens the default deny: give it with --default-deny")
        git_version()
        version = parse_release(cilium_version)
        committer = _author(author)
        remote = _remote(repo)
        forge_kind = provider_for(remote, Provider(provider.value))
        token = _token(forge_kind, token_file, dry_run)
        forge = None
        if forge_kind is not Provider.NONE and not dry_run and token:
            forge = _forge(forge_kind, remote, api_url, project, token)
        scope = Scope.of(namespace or [], all_namespaces=all_namespaces)
        plan = Plan(folder_path(path), base, branch_name(scope), scope, dry_run=dry_run)
        evidence = (input_file, store, since, allow_partial)
        review = _Reviewer(context, plan, evidence, version, l7, default_deny, wide_dns)
        with work_folder(work_dir) as work:
            git = Git(
                work,
                remote,
                token=token if remote.http_root else None,
                user=GIT_USER[forge_kind],
                redactor=Redactor([token] if token else []),
                author=committer,
            )
            try:
                outcome = run(plan, git, forge, review.policies, review.describe)
            finally:
                if forge is not None:
                    forge.shutdown()
        _print(outcome, dry_run)


class _Reviewer:
    """The evidence and the proposal, loaded once; the review made for each base read."""

    def __init__(
        self,
        context: typer.Context,
        plan: Plan,
        evidence: tuple[list[str] | None, Path | None, str | None, bool],
        version: Release,
        l7: L7Mode,
        default_deny: bool,
        wide_dns: bool,
    ) -> None:
        from flowgen.propose.remote import scope_label  # noqa: PLC0415
        from flowgen.propose.window import lost_events  # noqa: PLC0415
        from flowgen.synth.options import Options  # noqa: PLC0415
        from flowgen.synth.synth import synthesize  # noqa: PLC0415

        input_file, store, since, allow_partial = evidence
        scope = plan.scope
        loaded = [] if scope.all_namespaces else sorted(scope.named)
        self.evidence = observed(input_file, store, since, namespaces=loaded, allow_partial=allow_partial, samples=True)
        self.command = _command(context)
        options = Options(version=version, l7=l7, default_deny=default_deny, wide_dns=wide_dns, command=self.command)
        self.plan = plan
        self.version = version
        self.edges = self.evidence.edges()
        self.proposal = synthesize(self.edges, scope, options)
        self.policies: list[Policy] = list(self.proposal.policies)
        self.namespaces = scope.within(p.namespace or "" for e in self.edges for p in (e.source, e.destination))
        since_at = parse_since(since, "--since", datetime.now(UTC)) if since else None
        self.lost = lost_events(input_file, store or default_store(), since_at)
        self.label = scope_label(scope)
        err.print(f"Generated {len(self.policies)} policies for {self.label} ({len(self.proposal.notes)} notes)")

    def describe(self, base: Sequence[Policy], new: Sequence[Policy]) -> Review:
        from flowgen.propose.body import review  # noqa: PLC0415

        return review(
            scope=self.label,
            branch=self.plan.branch,
            base=self.plan.base,
            path=self.plan.path,
            edges=self.edges,
            existing=base,
            proposed=new,
            notes=self.proposal.notes,
            namespaces=self.namespaces,
            version=self.version,
            samples=self.evidence.samples,
            lost=self.lost,
            command=self.command,
        )


def _print(outcome: Outcome, dry_run: bool) -> None:
    if dry_run:
        out.print(f"Branch: {outcome.branch}")
        for line in outcome.lines:
            out.print(line)
        if outcome.status == "nothing":
            return
        out.print("Commit message:")
        for line in outcome.message.splitlines():
            out.print(f"    {line}".rstrip())
        out.print(f"Pull request title: {outcome.title}")
        out.print("Pull request body:")
        write(outcome.body)
        return
    for line in outcome.lines:
        out.print(line)
