"""The monitor's HTTP API (FastAPI): support's cases, silences, suppressions and fleet
incidents, and the customers' feedback links."""

from monitor.api.app import create_app

__all__ = ["create_app"]
