"""The ``rlops`` command."""
