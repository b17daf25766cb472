"""flowgen: least-privilege CiliumNetworkPolicies learned from Hubble flows."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("flowgen")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
