"""Synthesis: the communication graph becomes least-privilege policies plus notes.

Pure: edges in, a `Proposal` (policies and the notes a reviewer needs) out.
"""
