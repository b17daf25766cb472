"""Policy: the CiliumNetworkPolicy subset flowgen reads and writes.

The frozen `model`, YAML out (`render`) and in (`parsing`), what the API
server or the Cilium agent would reject (`validation`), policy folders on
disk (`folder`) and the read-only cluster reader (`cluster`). Independent of
how the policies were made: nothing here knows about flows or graphs.
"""
