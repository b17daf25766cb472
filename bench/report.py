"""What the benchmark scripts share: the machine description and writing their section of docs/performance.md."""

from __future__ import annotations

import os
import platform
import resource
from datetime import UTC, datetime
from pathlib import Path


def peak_rss_mib() -> float:
    """This process's peak resident memory (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()} {platform.machine()}"
    )


def measured(how: str = "") -> str:
    """The line that says when and where a benchmark ran (and with what, when given)."""
    return f"Measured {datetime.now(UTC):%Y-%m-%d} on {machine()}{how}"


def replace_section(path: Path, section: str) -> None:
    """Put `section` (which starts with its "## " heading) into the Markdown file, replacing
    the section with the same heading or appending it."""
    text = path.read_text() if path.exists() else "# Performance\n"
    head = section.split("\n", 1)[0]
    if head in text:
        before, rest = text.split(head, 1)
        after = rest.split("\n## ", 1)
        text = before + section + ("\n\n## " + after[1] if len(after) > 1 else "\n")
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)


def publish(lines: list[str], write: Path | None) -> int:
    """Print a benchmark's section (its lines, heading first) and, with `write`, put it into that
    Markdown file (see replace_section); the script's exit status."""
    report = "\n".join(lines)
    print(report)
    if write:
        replace_section(write, report)
    return 0
