"""Where a proposal goes: the repository's address, the forge and its API, the branch, and
keeping the token out of everything flowgen writes or prints.

A token is never part of a URL flowgen keeps: git gets it as an HTTP header scoped to the
repository's host, for one command at a time (see flowgen.propose.git), and every text
that could carry it (git's and the forge's errors) goes through `Redactor.scrub`.
"""

from __future__ import annotations

import base64
import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from flowgen.errors import UsageError
from flowgen.synth.options import Scope

BRANCH_PREFIX = "flowgen/"
HIDDEN = "***"


class Provider(enum.StrEnum):
    AUTO = "auto"
    GITHUB = "github"
    GITLAB = "gitlab"
    NONE = "none"


# The user name git sends with a token over HTTPS, per forge (any name works on GitLab).
GIT_USER = {Provider.GITHUB: "x-access-token", Provider.GITLAB: "oauth2", Provider.NONE: "x-access-token"}
# Where each forge's token is read from by default.
TOKEN_VARIABLE = {Provider.GITHUB: "GITHUB_TOKEN", Provider.GITLAB: "GITLAB_TOKEN"}

_SCP = re.compile(r"^(?:[^@/:]+@)?(?P<host>[^/:]+):(?P<path>[^/].*)$")


@dataclass(frozen=True, slots=True)
class Remote:
    """A repository address as given to git, and what is known from it."""

    url: str
    # "https://host[:port]/" for HTTP(S) remotes: the prefix a token header is scoped to; "" otherwise.
    http_root: str
    # "github.com", "gitlab.example.com:8443"; "" for a local path.
    host: str
    # "owner/name" (GitLab: "group/subgroup/name"), without ".git"; "" when not known.
    project: str

    @property
    def local(self) -> bool:
        return not self.host


def parse_remote(text: str) -> Remote:
    """The repository at `text`: an HTTPS, SSH or git URL, `user@host:path`, or a local path
    (returned as given: the caller makes it absolute). A password or token in the URL is an
    error: git would write it to .git/config."""
    if "://" in text:
        parts = urlsplit(text)
        if parts.password is not None or (parts.scheme in ("http", "https") and parts.username):
            raise UsageError(
                "--repo must not hold credentials (git writes the URL to .git/config): give the token in "
                "GITHUB_TOKEN / GITLAB_TOKEN or with --token-file, and the URL without user or password"
            )
        if parts.scheme == "file":
            return Remote(text, "", "", "")
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
        root = f"{parts.scheme}://{host}/" if parts.scheme in ("http", "https") else ""
        return Remote(text, root, host, _project(parts.path))
    scp = _SCP.match(text)
    if scp and not text.startswith(("/", ".")):
        return Remote(text, "", scp["host"], _project(scp["path"]))
    return Remote(text, "", "", "")


def _project(path: str) -> str:
    path = path.strip("/")
    return path.removesuffix(".git")


def provider_for(remote: Remote, given: Provider) -> Provider:
    if given is not Provider.AUTO:
        return given
    host = remote.host.lower()
    if "github" in host:
        return Provider.GITHUB
    if "gitlab" in host:
        return Provider.GITLAB
    raise UsageError(
        f"cannot tell the forge from --repo {remote.url}: pass --provider github, gitlab or none "
        "(none pushes the branch and opens no pull request)"
    )


def api_root(provider: Provider, remote: Remote, given: str | None) -> str:
    """The forge's REST API root: `given`, else the public one or the enterprise path on the host."""
    if given:
        return given.rstrip("/")
    host = remote.host.split(":", 1)[0]
    if provider is Provider.GITHUB:
        if host == "github.com":
            return "https://api.github.com"
        if host:
            return f"https://{remote.host}/api/v3"
    if provider is Provider.GITLAB and host:
        return f"https://{remote.host}/api/v4"
    raise UsageError(f"say where the {provider} API is: --api-url URL (the repository is not on a forge host)")


def project_for(remote: Remote, given: str | None) -> str:
    project = (given or remote.project).strip("/")
    if not project or "/" not in project:
        raise UsageError(
            f"say which project the pull request is for: --project OWNER/NAME (not known from --repo {remote.url})"
        )
    return project


def branch_name(scope: Scope) -> str:
    """flowgen's own branch for a scope: flowgen/<namespace>, flowgen/all for -A (names joined by +)."""
    names = (["all"] if scope.all_namespaces else []) + sorted(
        scope.named - ({"all"} if scope.all_namespaces else set())
    )
    return BRANCH_PREFIX + "+".join(names)


def scope_label(scope: Scope) -> str:
    named = ", ".join(sorted(scope.named))
    if scope.all_namespaces:
        return "all namespaces" + (f" and {named}" if named else "")
    return named


def basic_auth(user: str, token: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()


def url_path(project: str) -> str:
    """A GitLab project path as one URL path segment (group%2Fname)."""
    return quote(project, safe="")


class Redactor:
    """Hides secrets in text: each token, the header values made from it, and credentials in URLs."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: list[str] = []
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str) -> None:
        if not secret:
            return
        forms = {secret, basic_auth(GIT_USER[Provider.GITHUB], secret), basic_auth(GIT_USER[Provider.GITLAB], secret)}
        forms |= {f.removeprefix("Basic ") for f in list(forms)}
        self._secrets.extend(sorted(forms - set(self._secrets), key=len, reverse=True))
        self._secrets.sort(key=len, reverse=True)

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, HIDDEN)
        return re.sub(r"(://)[^/@\s]+@", rf"\g<1>{HIDDEN}@", text)
