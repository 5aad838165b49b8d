"""The dashboard page served at ``/`` and the JSON it reads (being built)."""

from __future__ import annotations

from fastapi import FastAPI


def install_dashboard(app: FastAPI) -> None:
    """Add the dashboard's routes to the service app."""
