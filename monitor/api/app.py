"""Building the API app: one engine, and the routers, each included on one line."""

from __future__ import annotations

from fastapi import FastAPI

from monitor.api import cases, feedback, noise
from monitor.config import Settings
from monitor.store import open_database


def create_app(settings: Settings) -> FastAPI:
    """The support API on ``settings.database`` (its tables are created if missing)."""
    app = FastAPI(title="IoT proactive service monitor", version="1")
    app.state.engine = open_database(settings.database.url, settings.database.migrate)
    app.state.settings = settings
    app.include_router(cases.router)
    app.include_router(noise.router)
    app.include_router(feedback.router)

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app
