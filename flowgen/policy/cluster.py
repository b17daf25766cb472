"""What flowgen asks a live cluster, through kubectl (read-only)."""

from __future__ import annotations

import re
import shutil
import subprocess

from flowgen.errors import FlowgenError
from flowgen.policy.model import Policy
from flowgen.policy.parsing import parse

_TAG = re.compile(r":v?(\d+)\.(\d+)\.\d+")


def cluster_cilium_version(context: str | None = None) -> tuple[int, int]:
    """The Cilium release the cluster runs, from the cilium DaemonSet's image tag."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise FlowgenError("--cilium-version auto needs kubectl on PATH; pass --cilium-version 1.19 (or your release)")
    command = [
        kubectl,
        "-n",
        "kube-system",
        "get",
        "daemonset",
        "cilium",
        "-o",
        "jsonpath={.spec.template.spec.containers[*].image}",
    ]
    if context:
        command[1:1] = ["--context", context]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    except subprocess.TimeoutExpired:
        raise FlowgenError("kubectl did not answer within 30 s; pass --cilium-version explicitly") from None
    match = _TAG.search(done.stdout)
    if done.returncode != 0 or match is None:
        reason = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"image {done.stdout!r}"
        raise FlowgenError(
            f"cannot read the Cilium version from the cluster ({reason}); pass --cilium-version 1.19 (or your release)"
        )
    return int(match.group(1)), int(match.group(2))


def cluster_policies(context: str | None = None) -> tuple[list[Policy], list[str]]:
    """Every CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy in the cluster (read-only)."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise FlowgenError("--from-cluster needs kubectl on PATH (or pass --existing DIR)")
    policies: list[Policy] = []
    skipped: list[str] = []
    for resource in ("ciliumnetworkpolicies.cilium.io", "ciliumclusterwidenetworkpolicies.cilium.io"):
        command = [kubectl, *(["--context", context] if context else []), "get", resource, "-o", "yaml"]
        if resource.startswith("ciliumnetwork"):
            command.append("--all-namespaces")
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        except subprocess.TimeoutExpired:
            raise FlowgenError(f"kubectl get {resource} did not answer within 60 s") from None
        if done.returncode != 0:
            reason = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit status {done.returncode}"
            raise FlowgenError(f"kubectl get {resource} failed: {reason}. Check --context and your access")
        parsed = parse(done.stdout, f"kubectl get {resource}")
        policies.extend(parsed.policies)
        skipped.extend(parsed.skipped)
    return policies, skipped
