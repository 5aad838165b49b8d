"""What every benchmark shares: the machine facts and the section writer for docs/benchmarks.md."""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "benchmarks.md"
#: Text after this line in a section is written by hand (analysis, limits) and kept when the section is redone.
NOTES_MARK = "<!-- notes below are kept when the benchmark rewrites this section -->"


def machine() -> dict[str, str]:
    """The facts docs/benchmarks.md records next to the numbers."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        df = subprocess.run(["df", "-T", str(REPO)], capture_output=True, text=True, check=True).stdout.splitlines()
        filesystem = f"{df[1].split()[1]} ({df[1].split()[0]})"
    except (OSError, subprocess.CalledProcessError, IndexError):
        filesystem = "unknown"
    return {"nproc": str(os.cpu_count()), "cpu": cpu, "python": platform.python_version(),
            "filesystem": filesystem, "os": f"{platform.system()} {platform.release()}",
            "date": dt.date.today().isoformat()}


def machine_line(facts: dict[str, str]) -> str:
    return (f"Machine: {facts['nproc']} CPUs ({facts['cpu']}), Python {facts['python']}, {facts['os']}, "
            f"filesystem {facts['filesystem']}.")


def write_section(section: str, generated: str) -> None:
    """Replace (or add) the section headed ``section`` in docs/benchmarks.md, leaving other sections alone.

    Hand-written notes after :data:`NOTES_MARK` inside the section are kept.
    """
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n\nResults of the scripts in `bench/`.\n"
    pattern = re.compile(rf"^{re.escape(section)}\n.*?(?=^## |\Z)", re.S | re.M)
    old = pattern.search(text)
    notes = ""
    if old is not None and NOTES_MARK in old.group(0):
        notes = old.group(0).split(NOTES_MARK, 1)[1].strip("\n")
    body = f"{generated}\n{NOTES_MARK}\n" + (f"\n{notes}\n" if notes else "")
    if old is not None:
        text = text[: old.start()] + body + ("\n" if text[old.end():] else "") + text[old.end():]
    else:
        text = text.rstrip("\n") + "\n\n" + body
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(text)
