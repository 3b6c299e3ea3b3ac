"""Building the API app: one engine, and the routers, each included on one line."""

from __future__ import annotations

from fastapi import Depends, FastAPI

from monitor.api import cases, feedback, noise
from monitor.api.auth import check_exposure, require_token
from monitor.config import Settings
from monitor.store import open_database


def create_app(settings: Settings) -> FastAPI:
    """The support API on ``settings.database`` (its tables are created if missing).

    Raises :class:`~monitor.config.ConfigError` if ``settings.api`` would expose it beyond
    loopback without a token (see :mod:`monitor.api.auth`).
    """
    check_exposure(settings.api)
    app = FastAPI(title="IoT proactive service monitor", version="1")
    app.state.engine = open_database(settings.database.url, settings.database.migrate)
    app.state.settings = settings
    support = [Depends(require_token)]
    app.include_router(cases.router, dependencies=support)
    app.include_router(noise.router, dependencies=support)
    # The customers' links carry their own signed tokens.
    app.include_router(feedback.router)

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app
