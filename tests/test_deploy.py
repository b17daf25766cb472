"""deploy/ stays deployable: every Kubernetes manifest validates against the Kubernetes OpenAPI
schemas (kubernetes-validate bundles them: offline, strict, so a misspelt field fails), the
CronJob runs observe then propose as a non-root user with the token as a file, the RBAC is
read-only on Cilium's policies, the image is non-root, and the CI example reads its token
from the environment."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.conftest import ROOT

DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
# The oldest Kubernetes release the manifests are checked against (CronJob batch/v1 since 1.21).
VERSIONS = ("1.30.0", kubernetes_validate.latest_version())


def _resources() -> list[tuple[Path, dict[str, Any]]]:
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    found = []
    for name in kustomization["resources"]:
        for document in yaml.safe_load_all((KUBERNETES / name).read_text()):
            if document:
                found.append((KUBERNETES / name, document))
    return found


def test_the_kustomization_lists_every_manifest() -> None:
    listed = set(yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())["resources"])
    assert listed == {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}


@pytest.mark.parametrize("version", VERSIONS)
def test_every_manifest_validates_against_the_kubernetes_schemas(version: str) -> None:
    for path, document in _resources():
        try:
            kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.ValidationError as problem:
            pytest.fail(f"{path.name} {document['kind']}: {problem.message} at {list(problem.path)}")


def _kinds() -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for _path, document in _resources():
        found.setdefault(document["kind"], []).append(document)
    return found


def test_the_cronjob_observes_then_proposes_unprivileged_with_the_token_as_a_file() -> None:
    kinds = _kinds()
    (cronjob,) = kinds["CronJob"]
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    script = " ".join(container["args"])
    assert re.search(r"flowgen observe .*--duration 1h .*&& flowgen propose ", script)
    assert "--token-file /var/run/secrets/flowgen/token" in script
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    assert pod["serviceAccountName"] == kinds["ServiceAccount"][0]["metadata"]["name"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert not any("TOKEN" in e.get("name", "") for e in container.get("env", []))
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert (
        volumes["store"]["persistentVolumeClaim"]["claimName"] == kinds["PersistentVolumeClaim"][0]["metadata"]["name"]
    )
    assert mounts["store"] == "/var/lib/flowgen"
    secrets = {s["metadata"]["name"] for s in kinds["Secret"]}
    assert {volumes["forge-token"]["secret"]["secretName"], volumes["relay-tls"]["secret"]["secretName"]} == secrets
    config = kinds["ConfigMap"][0]["data"]
    assert config["RELAY_ADDRESS"].startswith("tls://") and "$RELAY_ADDRESS" in script


def test_the_rbac_only_reads_cilium_policies() -> None:
    (role,) = _kinds()["ClusterRole"]
    (rule,) = role["rules"]
    assert rule["apiGroups"] == ["cilium.io"]
    assert set(rule["resources"]) == {"ciliumnetworkpolicies", "ciliumclusterwidenetworkpolicies"}
    assert set(rule["verbs"]) <= {"get", "list", "watch"}


def test_the_image_is_flowgen_and_git_as_a_non_root_user() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    users = re.findall(r"^USER (\S+)", text, flags=re.MULTILINE)
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert re.search(r"apt-get install .*\bgit\b", text)
    assert 'ENTRYPOINT ["flowgen"]' in text


def test_the_ci_example_is_scheduled_and_reads_the_token_from_the_environment() -> None:
    workflow = yaml.safe_load((DEPLOY / "ci" / "github-actions-propose.yaml").read_text())
    # YAML 1.1 reads the key `on` as True.
    triggers = workflow.get("on", workflow.get(True))
    assert triggers["schedule"][0]["cron"]
    steps = workflow["jobs"]["propose"]["steps"]
    runs = " ".join(step.get("run", "") for step in steps)
    assert "flowgen observe" in runs and "flowgen propose" in runs and "--token" not in runs
    (propose,) = [s for s in steps if "flowgen propose" in s.get("run", "")]
    assert "GITHUB_TOKEN" in propose["env"]
