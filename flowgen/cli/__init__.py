"""The command line: the only code that prints, reads the environment or exits.

`main` holds the app and the observe and graph commands, `policy` the policy
commands, `console` what they share, `timespec` durations and times as typed.
"""

from flowgen.cli.main import app

__all__ = ["app"]
