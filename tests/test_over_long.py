"""Length caps on evidence (issue #13): a value longer than any real one is never cut short into
a rule, never widens one, and is counted in the observe summary."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from flowgen.cli import app
from flowgen.graph.builder import GraphBuilder
from flowgen.graph.edge import Edge
from flowgen.graph.evidence import (
    MAX_DNS_NAME,
    MAX_KAFKA_TOPIC,
    MAX_LABEL_VALUE,
    MAX_NAME,
    MAX_PATH,
    L7Kind,
    Skip,
    TooLong,
    Use,
)
from flowgen.graph.identity import Peer, PeerKind
from flowgen.ingest.flow import DNS, HTTP, Endpoint, Flow, Kafka, L7Type, Layer7, Workload
from tests.conftest import DEMO, entity, pod, tcp_flow

runner = CliRunner()
FRONTEND = pod("shop", "frontend")
API = pod("shop", "api")
COREDNS = pod("kube-system", "coredns", "k8s:k8s-app=kube-dns")
KAFKA = pod("data", "kafka")
WORLD = entity("world", identity=2)
# Built once: a 100 KB path.
HUGE_PATH = "/" + "a" * 100_000


def _http(path: str, *, at: float = 0.0, method: str = "GET") -> Flow:
    request = HTTP(method=method, url=f"http://10.0.0.2:8080{path}", protocol="HTTP/1.1")
    return tcp_flow(FRONTEND, API, 8080, at=at, l7=Layer7(type=L7Type.REQUEST, http=request))


def _dns(query: str, at: float = 0.0) -> Flow:
    return tcp_flow(
        FRONTEND, COREDNS, 53, at=at, udp=True, l7=Layer7(type=L7Type.REQUEST, dns=DNS(query=query, qtypes=("A",)))
    )


def _build(*flows: Flow) -> tuple[GraphBuilder, list[Edge]]:
    builder = GraphBuilder()
    builder.add_all(flows)
    return builder, builder.graph().edges()


def test_an_over_long_path_is_no_evidence_and_is_counted() -> None:
    builder, edges = _build(_http("/ok"), _http(HUGE_PATH, at=1))
    assert [e.l7.path for e in edges] == ["/ok"]
    assert builder.report.over_long == {TooLong.PATH: 1}
    assert builder.report.skipped == {Skip.OVER_LONG: 1}
    assert builder.report.evidence == {Use.ALLOWED: 1}


def test_values_at_their_cap_are_kept() -> None:
    longest_label = "k8s:team=" + "t" * MAX_LABEL_VALUE
    # A service account name is a DNS subdomain, longer than a label value may be.
    account = "k8s:io.cilium.k8s.policy.serviceaccount=" + "s" * MAX_NAME
    owner = Endpoint(
        namespace="shop",
        labels=(*FRONTEND.labels, longest_label, account),
        pod_name="p" * MAX_NAME,
        workloads=(Workload(name="w" * MAX_NAME, kind="Deployment"),),
    )
    path = "/" + "p" * (MAX_PATH - 1)
    name = ("a" * 62 + ".") * 4
    name = name[: MAX_DNS_NAME - 4] + ".com."
    flows = [
        _http(path),
        _dns(name),
        tcp_flow(owner, API, 8080, at=2),
        tcp_flow(
            FRONTEND,
            KAFKA,
            9092,
            at=3,
            l7=Layer7(type=L7Type.REQUEST, kafka=Kafka(api_key="produce", topic="t" * MAX_KAFKA_TOPIC)),
        ),
    ]
    builder, edges = _build(*flows)
    assert builder.report.over_long == {}
    assert {e.l7.path for e in edges if e.l7.kind} == {path, name.rstrip("."), "t" * MAX_KAFKA_TOPIC}
    assert any(longest_label in e.source.labels for e in edges)


@pytest.mark.parametrize(
    ("flow", "kind"),
    [
        pytest.param(_http("/" + "p" * MAX_PATH), TooLong.PATH, id="path"),
        pytest.param(_dns("a." * 150), TooLong.DNS_NAME, id="dns-query-300"),
        pytest.param(
            tcp_flow(FRONTEND, WORLD, 443, dst_ip="52.1.2.3", names=("x" * 300 + ".com",)),
            TooLong.DNS_NAME,
            id="destination-name",
        ),
        pytest.param(
            tcp_flow(
                FRONTEND,
                KAFKA,
                9092,
                l7=Layer7(type=L7Type.REQUEST, kafka=Kafka(api_key="produce", topic="t" * (MAX_KAFKA_TOPIC + 1))),
            ),
            TooLong.KAFKA_TOPIC,
            id="kafka-topic",
        ),
        pytest.param(_http("/ok", method="G" * 65), TooLong.METHOD, id="method"),
        pytest.param(tcp_flow(pod("shop", "web", "k8s:team=" + "x" * 100), API, 8080), TooLong.LABEL, id="label-value"),
        pytest.param(tcp_flow(pod("shop", "web", "k8s:" + "k" * 318 + "=v"), API, 8080), TooLong.LABEL, id="label-key"),
        pytest.param(tcp_flow(FRONTEND, pod("shop", "a" * 64), 8080), TooLong.LABEL, id="app-label"),
        pytest.param(tcp_flow(Endpoint(namespace="shop", pod_name="p" * 254), API, 8080), TooLong.NAME, id="pod-name"),
        pytest.param(tcp_flow(Endpoint(namespace="n" * 64, pod_name="web-1"), API, 8080), TooLong.NAME, id="namespace"),
        pytest.param(
            tcp_flow(Endpoint(namespace="shop", workloads=(Workload(name="w" * 254),)), API, 8080),
            TooLong.NAME,
            id="workload-name",
        ),
        pytest.param(tcp_flow(FRONTEND, API, 8080, node="prod/" + "n" * 400), TooLong.NAME, id="node"),
    ],
)
def test_every_capped_value_keeps_its_flow_out(flow: Flow, kind: TooLong) -> None:
    builder, edges = _build(flow)
    assert edges == []
    assert builder.report.over_long == {kind: 1}
    assert builder.report.skipped == {Skip.OVER_LONG: 1}


def test_an_over_long_request_never_turns_its_port_into_an_l4_allow() -> None:
    """The proxy saw L7 on the port: without the over-long request, the connection's L4
    evidence would allow every path. It is left out; other ports are untouched."""
    connection = tcp_flow(FRONTEND, API, 8080)
    other_port = tcp_flow(FRONTEND, API, 9090, src_port=40001)
    _, edges = _build(connection, _http(HUGE_PATH, at=0.1), other_port)
    assert [(e.port, e.l7.kind) for e in edges] == [(9090, L7Kind.NONE)]
    # With a request that fits, that request is the port's only rule, as before.
    _, edges = _build(connection, _http(HUGE_PATH, at=0.1), _http("/ok", at=0.2))
    assert [(e.port, e.l7.path) for e in edges] == [(8080, "/ok")]
    # Without any over-long request the L4 evidence stays (synthesis decides).
    _, edges = _build(connection, _http("/ok", at=0.2))
    assert sorted((e.port, e.l7.path) for e in edges) == [(8080, ""), (8080, "/ok")]


def test_an_over_long_dns_query_never_opens_dns_at_l4() -> None:
    lookup = tcp_flow(FRONTEND, COREDNS, 53, udp=True)
    _, edges = _build(lookup, _dns("a." * 150, at=0.1))
    assert edges == []


def test_an_over_long_dns_answer_names_nothing() -> None:
    answer = tcp_flow(
        COREDNS,
        FRONTEND,
        40053,
        src_port=53,
        udp=True,
        is_reply=True,
        l7=Layer7(type=L7Type.RESPONSE, dns=DNS(query="b" * 300 + ".", ips=("52.1.2.3",), ttl=30)),
    )
    builder, edges = _build(answer, tcp_flow(FRONTEND, WORLD, 443, at=1, dst_ip="52.1.2.3"))
    assert [e.destination for e in edges] == [Peer(PeerKind.CIDR, name="52.1.2.3/32")]
    assert builder.report.over_long == {TooLong.DNS_NAME: 1}


def _crafted(tmp_path: Path) -> Path:
    """The demo with one request's path 100 KB long, one DNS query 300 characters long and one
    pod's app label 100 characters long (each on one line only)."""
    lines = DEMO.read_text().splitlines(keepends=True)
    replaced = {"path": False, "dns": False, "label": False}
    for number, line in enumerate(lines):
        if not replaced["path"] and '"url":"http://10.1.1.20:8080/healthz"' in line:
            lines[number] = line.replace("/healthz", HUGE_PATH)
            replaced["path"] = True
        elif not replaced["dns"] and '"query":"api.shop.svc.cluster.local."' in line:
            lines[number] = line.replace("api.shop.svc.cluster.local.", "a." * 150)
            replaced["dns"] = True
        elif not replaced["label"] and "app.kubernetes.io/name=postgres" in line:
            lines[number] = line.replace("app.kubernetes.io/name=postgres", "app.kubernetes.io/name=" + "p" * 100)
            replaced["label"] = True
    assert all(replaced.values())
    crafted = tmp_path / "crafted.jsonl"
    crafted.write_text("".join(lines))
    return crafted


def test_observe_counts_over_long_values(tmp_path: Path) -> None:
    crafted = _crafted(tmp_path)
    result = runner.invoke(app, ["observe", "-i", str(crafted), "--no-store", "-o", "json"])
    assert result.exit_code == 0, result.output
    summary = orjson.loads(result.stdout)
    assert summary["over_long"] == {"dns-name": 1, "label": 1, "path": 1}
    assert summary["not_evidence"]["over-long-value"] == 3
    text = runner.invoke(app, ["observe", "-i", str(crafted), "--no-store", "-o", "text"])
    assert "  over-long values skipped: 1 dns-name, 1 label, 1 path" in text.stdout


def test_no_edge_or_policy_carries_an_over_long_value(tmp_path: Path) -> None:
    crafted = _crafted(tmp_path)
    graph = runner.invoke(app, ["graph", "-i", str(crafted), "-o", "json"])
    assert graph.exit_code == 0, graph.output
    assert len(graph.stdout) < 1_000_000
    for marker in ("a" * 200, "a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a", "p" * 100):
        assert marker not in graph.stdout
    generated = runner.invoke(app, ["generate", "-A", "-i", str(crafted)])
    assert generated.exit_code == 0, generated.output
    assert "a" * 200 not in generated.stdout and "p" * 100 not in generated.stdout
