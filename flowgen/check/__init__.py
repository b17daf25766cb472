"""Checks: an offline model of Cilium's decision (`engine`), replaying observed
requests against policies (`verify`), existing policies against the evidence
and the proposal (`diff`), and the reports for reviewers (`report`)."""
