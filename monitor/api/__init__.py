"""The support team's HTTP API (FastAPI): cases, silences, suppressions, fleet incidents."""

from monitor.api.app import create_app

__all__ = ["create_app"]
