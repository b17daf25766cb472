"""A local stand-in for the GitHub and GitLab REST endpoints `flowgen propose` calls, on
127.0.0.1, checking each request against the documented shape: the auth header, the media
type, the path (GitLab's project id URL-encoded) and the JSON body's fields and types.
Anything else is answered 400 / 401 / 404 and recorded in `violations`.

GitHub (under /api/v3, as on GitHub Enterprise Server):
    GET   /repos/{owner}/{repo}/pulls?state=open|closed&head={owner}:{branch}
    POST  /repos/{owner}/{repo}/pulls                  {title, head, base, body}
    PATCH /repos/{owner}/{repo}/pulls/{number}         {title?, body?, state?}
    POST  /repos/{owner}/{repo}/issues/{number}/comments   {body}
GitLab (under /api/v4):
    GET   /projects/{id}/merge_requests?state=opened|closed&source_branch={branch}
    POST  /projects/{id}/merge_requests                {source_branch, target_branch, title, description?}
    PUT   /projects/{id}/merge_requests/{iid}          {title?, description?, state_event?}
    POST  /projects/{id}/merge_requests/{iid}/notes    {body}

`failures` queues canned answers (429 with Retry-After, 403 rate limit, 502, ...) for the
next requests that match a method and path fragment.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class Failure:
    method: str
    fragment: str
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] = field(default_factory=dict)


_GITHUB = re.compile(r"^/api/v3/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/(?P<rest>.*)$")
_GITLAB = re.compile(r"^/api/v4/projects/(?P<id>[^/]+)/merge_requests(?P<rest>/.*)?$")


def _typed(body: Any, required: dict[str, type], optional: dict[str, type]) -> str:
    """What is wrong with a JSON body ("" when it has the documented shape)."""
    if not isinstance(body, dict):
        return "the body is not a JSON object"
    for key, kind in required.items():
        if not isinstance(body.get(key), kind):
            return f"{key} is required ({kind.__name__})"
    for key, value in body.items():
        if key not in required and key not in optional:
            return f"unknown field {key}"
        if key in optional and not isinstance(value, optional[key]):
            return f"{key} must be {optional[key].__name__}"
    return ""


class ForgeServer:
    def __init__(self, token: str, project: str) -> None:
        self.token = token
        self.project = project
        self.calls: list[Call] = []
        self.violations: list[str] = []
        self.failures: list[Failure] = []
        self.pulls: dict[int, dict[str, Any]] = {}
        self.comments: dict[int, list[str]] = {}
        # The commit a branch points to (the tests read it from the git remote): a closed pull
        # request keeps the head it had when it was closed, as on the real forges.
        self.head_of: Callable[[str], str] = lambda _branch: ""
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def _any(self) -> None:
                server.handle(self)

            do_GET = do_POST = do_PATCH = do_PUT = _any

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def github(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v3"

    @property
    def gitlab(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v4"

    def open_pulls(self) -> list[dict[str, Any]]:
        return [p for p in self.pulls.values() if p["state"] in ("open", "opened")]

    def close(self, number: int, *, merged: bool) -> None:
        """A reviewer merges or closes a pull request in the forge's interface."""
        self._closed(self.pulls[number], merged=merged)

    def _closed(self, pull: dict[str, Any], *, merged: bool = False) -> None:
        pull["state"] = "closed"
        branch = pull["head"]["ref"] if "head" in pull else pull["source_branch"]
        if "head" in pull:
            pull["head"]["sha"] = self.head_of(branch)
            pull["merged_at"] = "2026-11-20T12:00:00Z" if merged else None
        else:
            pull["sha"] = self.head_of(branch)
            pull["state"] = "merged" if merged else "closed"

    def writes(self) -> list[Call]:
        return [c for c in self.calls if c.method != "GET"]

    # -- dispatch --------------------------------------------------------------

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        raw_path, _, raw_query = request.path.partition("?")
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = "<not json>"
        call = Call(
            request.command,
            raw_path,
            {k: v[0] for k, v in parse_qs(raw_query).items()},
            {k.lower(): v for k, v in request.headers.items()},
            body,
        )
        with self._lock:
            self.calls.append(call)
            status, headers, answer = self._answer(call)
        data = json.dumps(answer).encode() if answer is not None else b""
        request.send_response(status)
        for name, value in headers.items():
            request.send_header(name, value)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)

    def _answer(self, call: Call) -> tuple[int, dict[str, str], Any]:
        for failure in self.failures:
            if failure.method == call.method and failure.fragment in call.path:
                self.failures.remove(failure)
                return failure.status, failure.headers, failure.body
        if (match := _GITHUB.match(call.path)) is not None:
            return self._github(call, match)
        if (match := _GITLAB.match(call.path)) is not None:
            return self._gitlab(call, match)
        return self._refuse(404, f"no such endpoint {call.method} {call.path}")

    def _refuse(self, status: int, why: str) -> tuple[int, dict[str, str], Any]:
        self.violations.append(why)
        return status, {}, {"message": why}

    # -- GitHub ------------------------------------------------------------------

    def _github(self, call: Call, match: re.Match[str]) -> tuple[int, dict[str, str], Any]:
        if call.headers.get("authorization") != f"Bearer {self.token}":
            return self._refuse(401, "Bad credentials")
        if call.headers.get("accept") != "application/vnd.github+json" or "x-github-api-version" not in call.headers:
            return self._refuse(400, "missing the GitHub media type or API version header")
        if f"{match['owner']}/{match['repo']}" != self.project:
            return self._refuse(404, "Not Found")
        rest, owner = match["rest"], match["owner"]
        if rest == "pulls" and call.method == "GET":
            head, state = call.query.get("head", ""), call.query.get("state")
            if state not in ("open", "closed") or not head.startswith(f"{owner}:"):
                return self._refuse(400, f"expected state=open|closed and head=owner:branch, got {call.query}")
            branch = head.split(":", 1)[1]
            return 200, {}, [p for p in self.pulls.values() if p["head"]["ref"] == branch and p["state"] == state]
        if rest == "pulls" and call.method == "POST":
            problem = _typed(call.body, {"title": str, "head": str, "base": str}, {"body": str, "draft": bool})
            if problem:
                return self._refuse(422, problem)
            if any(p["head"]["ref"] == call.body["head"] for p in self.open_pulls()):
                return (
                    422,
                    {},
                    {
                        "message": "Validation Failed",
                        "errors": [{"message": f"A pull request already exists for {owner}:{call.body['head']}."}],
                    },
                )
            number = len(self.pulls) + 1
            self.pulls[number] = {
                "number": number,
                "html_url": f"https://github.example/{self.project}/pull/{number}",
                "title": call.body["title"],
                "body": call.body.get("body"),
                "state": "open",
                "head": {"ref": call.body["head"]},
                "base": {"ref": call.body["base"]},
            }
            return 201, {}, self.pulls[number]
        if (found := re.fullmatch(r"pulls/(\d+)", rest)) and call.method == "PATCH":
            problem = _typed(call.body, {}, {"title": str, "body": str, "state": str, "base": str})
            pull = self.pulls.get(int(found[1]))
            if problem or pull is None:
                return self._refuse(422 if pull else 404, problem or "Not Found")
            if call.body.get("state") == "closed":
                self._closed(pull)
            pull.update({k: v for k, v in call.body.items() if k != "state"})
            return 200, {}, pull
        if (found := re.fullmatch(r"issues/(\d+)/comments", rest)) and call.method == "POST":
            problem = _typed(call.body, {"body": str}, {})
            if problem or int(found[1]) not in self.pulls:
                return self._refuse(422, problem or "Not Found")
            self.comments.setdefault(int(found[1]), []).append(call.body["body"])
            return 201, {}, {"id": 1, "body": call.body["body"]}
        return self._refuse(404, f"no such GitHub endpoint {call.method} {rest}")

    # -- GitLab ------------------------------------------------------------------

    def _gitlab(self, call: Call, match: re.Match[str]) -> tuple[int, dict[str, str], Any]:
        if call.headers.get("private-token") != self.token:
            return self._refuse(401, "401 Unauthorized")
        if "/" in match["id"] or unquote(match["id"]) != self.project:
            return self._refuse(404, f"404 Project Not Found ({match['id']}: the id must be URL-encoded)")
        rest = match["rest"] or ""
        if rest == "" and call.method == "GET":
            state = call.query.get("state")
            if state not in ("opened", "closed") or "source_branch" not in call.query:
                return self._refuse(400, f"expected state=opened|closed and source_branch, got {call.query}")
            branch = call.query["source_branch"]
            return 200, {}, [p for p in self.pulls.values() if p["source_branch"] == branch and p["state"] == state]
        if rest == "" and call.method == "POST":
            problem = _typed(
                call.body,
                {"source_branch": str, "target_branch": str, "title": str},
                {"description": str, "remove_source_branch": bool},
            )
            if problem:
                return self._refuse(400, problem)
            if any(p["source_branch"] == call.body["source_branch"] for p in self.open_pulls()):
                return 409, {}, {"message": ["Another open merge request already exists for this source branch: !1"]}
            iid = len(self.pulls) + 1
            self.pulls[iid] = {
                "iid": iid,
                "web_url": f"https://gitlab.example/{self.project}/-/merge_requests/{iid}",
                "title": call.body["title"],
                "description": call.body.get("description"),
                "state": "opened",
                "source_branch": call.body["source_branch"],
                "target_branch": call.body["target_branch"],
            }
            return 201, {}, self.pulls[iid]
        if (found := re.fullmatch(r"/(\d+)", rest)) and call.method == "PUT":
            problem = _typed(call.body, {}, {"title": str, "description": str, "state_event": str})
            pull = self.pulls.get(int(found[1]))
            if problem or pull is None:
                return self._refuse(400 if pull else 404, problem or "404 Not found")
            if call.body.get("state_event") == "close":
                self._closed(pull)
            pull.update({k: v for k, v in call.body.items() if k != "state_event"})
            return 200, {}, pull
        if (found := re.fullmatch(r"/(\d+)/notes", rest)) and call.method == "POST":
            problem = _typed(call.body, {"body": str}, {})
            if problem or int(found[1]) not in self.pulls:
                return self._refuse(400, problem or "404 Not found")
            self.comments.setdefault(int(found[1]), []).append(call.body["body"])
            return 201, {}, {"id": 1, "body": call.body["body"]}
        return self._refuse(404, f"no such GitLab endpoint {call.method} {rest}")

    def start(self) -> ForgeServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@contextmanager
def serving(token: str, project: str) -> Iterator[ForgeServer]:
    server = ForgeServer(token, project).start()
    try:
        yield server
    finally:
        server.stop()
