"""Policy: the CiliumNetworkPolicy subset flowgen reads and writes.

The frozen `model`, YAML out (`render`) and in (`parsing`, reading nodes
through `yaml_nodes`), what the API server or the Cilium agent would reject
(`validation`, with the toPorts and DNS name checks in `port_validation` and
the value formats in `formats`), policy folders on disk (`folder`) and the
read-only cluster reader (`cluster`). Independent of how the policies were
made: nothing here knows about flows or graphs.
"""
