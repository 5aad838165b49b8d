"""A private virtual environment with the Open Bandit Pipeline (obp 0.5.7), built once, for tests and the bench.

obp 0.5.7 declares Python < 3.11 and pins packages from 2022, so it cannot live in the project's environment. It is
installed with ``--no-deps --ignore-requires-python`` into its own venv next to a working set of its dependencies
(numpy 1.26, pandas 1.5; torch only because ``obp.utils`` imports it) and driven through ``obp_side.py`` in a
subprocess, exchanging ``.npz`` files.

The venv lives in ``$RLOPS_OBP_VENV``, default ``$XDG_CACHE_HOME/rlops-obp-venv`` (``~/.cache/rlops-obp-venv``).
It is built under a file lock, and a stamp file records the package set, so a changed set rebuilds it.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

#: The working set (checked with Python 3.11): obp's own pins are older than any wheel for 3.11.
PACKAGES = [
    "numpy==1.26.4",
    "pandas==1.5.3",
    "scikit-learn==1.3.2",
    "scipy==1.11.4",
    "matplotlib==3.8.4",
    "seaborn==0.12.2",
    "tqdm>=4.62",
    "PyYAML>=6",
    "torch==2.13.0",  # the CPU build, as the project's Makefile installs it
]
OBP = "obp==0.5.7"
SIDE = Path(__file__).resolve().parent / "obp_side.py"
_NETWORK_WORDS = ("could not find a version", "no matching distribution", "connection", "network is unreachable",
                  "temporary failure", "name resolution", "proxyerror", "timed out", "max retries")


class Unavailable(Exception):
    """The OBP environment cannot be built here (no suitable Python, or no access to the package index)."""


def venv_dir() -> Path:
    if os.environ.get("RLOPS_OBP_VENV"):
        return Path(os.environ["RLOPS_OBP_VENV"])
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "rlops-obp-venv"


def _base_python() -> str:
    for name in ("python3.11", "python3.10"):
        found = shutil.which(name)
        if found:
            return found
    for path in ("/usr/bin/python3.11", "/usr/bin/python3.10"):
        if Path(path).exists():
            return path
    raise Unavailable("no python3.11 or python3.10 interpreter to build the OBP environment with")


def _run(args: list[str]) -> None:
    done = subprocess.run(args, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout)[-2000:]
        if any(word in tail.lower() for word in _NETWORK_WORDS):
            raise Unavailable(f"cannot reach the package index to build the OBP environment: {tail.strip()[-300:]}")
        raise RuntimeError(f"building the OBP environment failed: {' '.join(args)}\n{tail}")


def obp_python() -> Path:
    """The OBP venv's interpreter, building the venv first if needed (about a minute, once)."""
    root = venv_dir()
    stamp = root / ".rlops-stamp"
    wanted = "\n".join([*PACKAGES, OBP])
    python = root / "bin" / "python"
    if stamp.exists() and stamp.read_text() == wanted and python.exists():
        return python
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f".{root.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.exists() and stamp.read_text() == wanted and python.exists():
            return python
        if root.exists():
            shutil.rmtree(root)
        _run([_base_python(), "-m", "venv", str(root)])
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        _run([*pip, *PACKAGES])
        _run([*pip, "--no-deps", "--ignore-requires-python", OBP])
        _run([str(python), "-c", "import obp.ope, obp.dataset"])
        stamp.write_text(wanted)
    return python


def run_side(*args: str) -> None:
    """Run ``obp_side.py`` with ``args`` in the OBP venv."""
    done = subprocess.run([str(obp_python()), str(SIDE), *args], capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"obp_side.py {' '.join(args)} failed:\n{done.stderr[-3000:]}")
