"""Proposing policies as a pull request: what changes and why (the review body), the git
work (git.py, through the real git) and the forges' REST APIs (forge.py), composed by
workflow.py. `flowgen propose` (flowgen/cli/propose.py) is its command; docs/propose.md
walks through it."""
