"""The command line: the only code that prints, reads the environment or exits.

`main` holds the app; one module per command group (`observe`, `graph`, `policy`
for generate, verify and diff); `console` is what they share, `timespec` durations
and times as typed.
"""

import os

# grpc reads this once, when first imported (by flowgen.ingest.dialing, through the observe
# command): without it, grpc's own INFO lines ("Handshake failed ...") clutter stderr next to
# flowgen's messages.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

from flowgen.cli.main import app

__all__ = ["app"]
