"""Ingest: where flows come from and what they are.

The flow model (`flow`), Hubble JSON lines (`jsonlines`, `files`) and the live
Hubble Relay stream (`dialing`, `hubble`) all yield the same frozen `Flow`
values, through the one protobuf conversion in `proto`; `summary` counts what
came in. Nothing here knows about graphs or policies.
"""
