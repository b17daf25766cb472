"""Notes about pods Hubble gave the world identity (Cilium's IP cache had not learned their address).

The graph resolves such a pod to the identity it has in other flows of the
window (flowgen.graph.pods), so its rules name that workload: a `toCIDR` for a
pod address would not select the pod once Cilium resolves it. A note per pod
says what it was resolved to and how. A pod that never appeared with an
identity of its own gets no rule at all (no CIDR for a pod address); the note
for that is made where the rule would have been (Context.unselectable says why).
"""

from __future__ import annotations

from collections.abc import Iterable

from flowgen.graph.edge import Edge, ResolvedPod
from flowgen.graph.identity import Peer, PeerKind
from flowgen.synth.context import Context
from flowgen.synth.notes import Note, NoteKind


def resolved_pod_notes(ctx: Context, edges: Iterable[Edge], namespaces: Iterable[str]) -> list[Note]:
    """One note per pod resolved from the world identity on an edge touching `namespaces`."""
    wanted = set(namespaces)
    found: set[tuple[ResolvedPod, Peer]] = set()
    for edge in edges:
        sides = ((edge.source, edge.source_pods), (edge.destination, edge.destination_pods))
        touched = {peer.namespace for peer, _pods in sides} | {pod.namespace for _peer, pods in sides for pod in pods}
        if not wanted & touched:
            continue
        found.update((pod, peer) for peer, pods in sides for pod in pods)
    notes = []
    for pod, peer in sorted(found):
        how, _, value = pod.by.partition(" ")
        what = {
            "owner": f"its owner {value} (this pod never showed an identity of its own; another pod of {value} did)",
            "address": f"its address {value} (the same address in the same namespace)",
        }.get(how, "its pod name")
        kind = "workload" if peer.kind is PeerKind.WORKLOAD else "identity"
        notes.append(
            Note(
                NoteKind.WORLD_POD_RESOLVED,
                str(pod),
                f"Hubble gave this pod the world identity in some flows (Cilium's IP cache had not learned its "
                f"address yet); matched by {what} to {ctx.label(peer)}, the {kind} it has in other flows of the "
                "window: its rules name that, never the pod's address (CIDR rules do not select pods)",
            )
        )
    return notes
