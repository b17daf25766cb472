"""flowgen: least-privilege CiliumNetworkPolicies learned from Hubble flows."""

from __future__ import annotations


def __getattr__(name: str) -> str:
    # Looked up on first use: importlib.metadata takes longer to import than `flowgen --help` may.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

        try:
            return version("flowgen")
        except PackageNotFoundError:  # running from a source tree that was never installed
            return "0+unknown"
    raise AttributeError(f"module 'flowgen' has no attribute {name!r}")
