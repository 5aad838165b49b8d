"""``python -m rlops`` is the ``rlops`` command."""

from rlops.cli.main import run

run()
