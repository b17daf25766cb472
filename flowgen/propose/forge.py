"""GitHub's and GitLab's REST APIs, as far as proposing needs them: find the open pull (merge)
request of a branch, open one, update its title and body, close it with a comment.

Both work against the public services and against GitHub Enterprise / self-managed GitLab
(the API root is configurable). Rate limits and transient failures (429, 5xx, a secondary
rate limit's 403, a connection that fails) are retried with backoff, waiting as long as
`Retry-After` or the rate-limit reset header asks when that is within `max_wait`; sleeping
and the clock are injectable for tests. Errors never carry the token.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import httpx

import flowgen
from flowgen.errors import FlowgenError
from flowgen.propose.remote import Redactor, url_path

RETRIED = frozenset({429, 500, 502, 503, 504})
# Longest backoff without a server's word on how long to wait.
_MAX_BACKOFF = 30.0


class ForgeError(FlowgenError):
    """The forge refused a request (`status`: its HTTP status) or could not be reached (0)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class PullRequest:
    number: int
    url: str
    title: str
    body: str


class Forge(Protocol):
    """What `flowgen propose` asks of a forge."""

    name: str

    def find_open(self, branch: str) -> PullRequest | None: ...

    def rejected(self, branch: str, head: str) -> PullRequest | None:
        """A pull request of `branch` closed without merging while its head was `head`."""
        ...

    def create(self, branch: str, base: str, title: str, body: str) -> PullRequest: ...

    def update(self, pull: PullRequest, title: str, body: str) -> PullRequest: ...

    def close(self, pull: PullRequest, comment: str) -> None: ...

    def shutdown(self) -> None: ...


def retry_wait(headers: Mapping[str, str], attempt: int, now: float) -> float:
    """Seconds to wait before trying again: what `Retry-After` says (seconds or an HTTP date),
    else until the rate limit resets (GitHub's x-ratelimit-reset, GitLab's RateLimit-Reset,
    epoch seconds) when none is left, else 1, 2, 4, ... seconds (at most 30)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    after = lowered.get("retry-after", "").strip()
    if after:
        try:
            return max(0.0, float(after))
        except ValueError:
            try:
                return max(0.0, parsedate_to_datetime(after).timestamp() - now)
            except (TypeError, ValueError):
                pass
    for remaining, reset in (
        ("x-ratelimit-remaining", "x-ratelimit-reset"),
        ("ratelimit-remaining", "ratelimit-reset"),
    ):
        if lowered.get(remaining, "").strip() == "0" and lowered.get(reset, "").strip().isdigit():
            return max(0.0, float(lowered[reset]) - now) + 1.0
    return min(float(2**attempt), _MAX_BACKOFF)


def _rate_limited(response: httpx.Response) -> bool:
    """GitHub answers a rate limit with 403 (primary: no requests left; secondary: Retry-After)."""
    headers = response.headers
    return response.status_code == 403 and (
        "retry-after" in headers or headers.get("x-ratelimit-remaining", "").strip() == "0"
    )


class Http:
    """JSON requests to one API root with retries; errors as ForgeError, the token scrubbed."""

    def __init__(
        self,
        root: str,
        headers: Mapping[str, str],
        redactor: Redactor,
        *,
        attempts: int = 5,
        max_wait: float = 300.0,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], float] = time.time,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.root = root.rstrip("/")
        self.redactor = redactor
        self.attempts = attempts
        self.max_wait = max_wait
        self._sleep = sleep
        self._now = now
        self._client = httpx.Client(
            headers={"User-Agent": f"flowgen/{flowgen.__version__}", **headers},
            timeout=timeout,
            transport=transport,
            follow_redirects=False,
        )

    def close(self) -> None:
        self._client.close()

    def request(self, method: str, path: str, *, params: Mapping[str, str] | None = None, json: Any = None) -> Any:
        """The decoded JSON answer of a 2xx response (None for an empty one)."""
        url = f"{self.root}{path}"
        for attempt in range(self.attempts):
            last = attempt == self.attempts - 1
            try:
                response = self._client.request(method, url, params=params, json=json)
            except httpx.TransportError as problem:
                if last:
                    raise ForgeError(
                        f"{method} {self._where(path)}: {self.redactor.scrub(str(problem)) or type(problem).__name__}"
                        f" (after {self.attempts} attempts). Check --api-url and the network"
                    ) from None
                self._sleep(min(float(2**attempt), _MAX_BACKOFF))
                continue
            if response.status_code in RETRIED or _rate_limited(response):
                wait = retry_wait(response.headers, attempt, self._now())
                if last or wait > self.max_wait:
                    raise ForgeError(
                        f"{method} {self._where(path)}: {response.status_code} {self._message(response)}; "
                        f"gave up after {attempt + 1} attempts (the forge asks to wait {wait:.0f}s). Run again later",
                        response.status_code,
                    )
                self._sleep(wait)
                continue
            if response.status_code >= 400:
                raise ForgeError(
                    f"{method} {self._where(path)}: {response.status_code} {self._message(response)}",
                    response.status_code,
                )
            return response.json() if response.content else None
        raise AssertionError("unreachable")

    def _where(self, path: str) -> str:
        return self.redactor.scrub(f"{self.root}{path}")

    def _message(self, response: httpx.Response) -> str:
        """The forge's own words (GitHub: message and errors; GitLab: message or error)."""
        try:
            document = response.json()
        except ValueError:
            return self.redactor.scrub(response.text[:300].strip() or response.reason_phrase)
        if not isinstance(document, dict):
            return self.redactor.scrub(str(document)[:300])
        parts = [str(document.get(key)) for key in ("message", "error") if document.get(key)]
        for error in document.get("errors") or ():
            parts.append(str(error.get("message") or error) if isinstance(error, dict) else str(error))
        return self.redactor.scrub("; ".join(parts) or response.reason_phrase)


class ConflictError(ForgeError):
    """The forge says a pull request for the branch exists already (a concurrent run opened it)."""


class GitHub:
    """GitHub's pull requests API (api.github.com, or https://HOST/api/v3 for Enterprise)."""

    name = "GitHub"

    def __init__(self, http: Http, project: str) -> None:
        self.http = http
        self.project = project
        self.owner = project.split("/", 1)[0]

    @staticmethod
    def headers(token: str) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
        }

    def _pull(self, document: dict[str, Any]) -> PullRequest:
        return PullRequest(
            int(document["number"]), str(document["html_url"]), document["title"], document["body"] or ""
        )

    def find_open(self, branch: str) -> PullRequest | None:
        found = self.http.request(
            "GET",
            f"/repos/{self.project}/pulls",
            params={"state": "open", "head": f"{self.owner}:{branch}", "per_page": "100"},
        )
        for document in found or ():
            if document.get("head", {}).get("ref") == branch:
                return self._pull(document)
        return None

    def rejected(self, branch: str, head: str) -> PullRequest | None:
        found = self.http.request(
            "GET",
            f"/repos/{self.project}/pulls",
            params={"state": "closed", "head": f"{self.owner}:{branch}", "per_page": "100"},
        )
        for document in found or ():
            if document.get("head", {}).get("sha") == head and not document.get("merged_at"):
                return self._pull(document)
        return None

    def create(self, branch: str, base: str, title: str, body: str) -> PullRequest:
        try:
            document = self.http.request(
                "POST",
                f"/repos/{self.project}/pulls",
                json={"title": title, "head": branch, "base": base, "body": body},
            )
        except ForgeError as problem:
            if problem.status == 422 and "already exists" in str(problem):
                raise ConflictError(str(problem), problem.status) from None
            raise
        return self._pull(document)

    def update(self, pull: PullRequest, title: str, body: str) -> PullRequest:
        document = self.http.request(
            "PATCH", f"/repos/{self.project}/pulls/{pull.number}", json={"title": title, "body": body}
        )
        return self._pull(document)

    def close(self, pull: PullRequest, comment: str) -> None:
        self.http.request("POST", f"/repos/{self.project}/issues/{pull.number}/comments", json={"body": comment})
        self.http.request("PATCH", f"/repos/{self.project}/pulls/{pull.number}", json={"state": "closed"})

    def shutdown(self) -> None:
        self.http.close()


class GitLab:
    """GitLab's merge requests API (gitlab.com/api/v4, or https://HOST/api/v4 self-managed)."""

    name = "GitLab"

    def __init__(self, http: Http, project: str) -> None:
        self.http = http
        self.project = project
        self._base = f"/projects/{url_path(project)}/merge_requests"

    @staticmethod
    def headers(token: str) -> dict[str, str]:
        return {"PRIVATE-TOKEN": token, "Accept": "application/json"}

    def _pull(self, document: dict[str, Any]) -> PullRequest:
        return PullRequest(
            int(document["iid"]), str(document["web_url"]), document["title"], document["description"] or ""
        )

    def find_open(self, branch: str) -> PullRequest | None:
        found = self.http.request("GET", self._base, params={"state": "opened", "source_branch": branch})
        for document in found or ():
            if document.get("source_branch") == branch:
                return self._pull(document)
        return None

    def rejected(self, branch: str, head: str) -> PullRequest | None:
        found = self.http.request("GET", self._base, params={"state": "closed", "source_branch": branch})
        for document in found or ():
            if document.get("source_branch") == branch and document.get("sha") == head:
                return self._pull(document)
        return None

    def create(self, branch: str, base: str, title: str, body: str) -> PullRequest:
        try:
            document = self.http.request(
                "POST",
                self._base,
                json={
                    "source_branch": branch,
                    "target_branch": base,
                    "title": title,
                    "description": body,
                    "remove_source_branch": True,
                },
            )
        except ForgeError as problem:
            if problem.status == 409:
                raise ConflictError(str(problem), problem.status) from None
            raise
        return self._pull(document)

    def update(self, pull: PullRequest, title: str, body: str) -> PullRequest:
        document = self.http.request("PUT", f"{self._base}/{pull.number}", json={"title": title, "description": body})
        return self._pull(document)

    def close(self, pull: PullRequest, comment: str) -> None:
        self.http.request("POST", f"{self._base}/{pull.number}/notes", json={"body": comment})
        self.http.request("PUT", f"{self._base}/{pull.number}", json={"state_event": "close"})

    def shutdown(self) -> None:
        self.http.close()
