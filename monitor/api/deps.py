"""What every router shares: the app's database (an engine, or a session per request), its
``[notify]`` settings and the monitor's clock, all read from ``app.state``."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.engine import Engine
from sqlmodel import Session

from monitor.config import NotifySettings


def database(request: Request) -> Engine:
    """The monitor's database, as the app keeps it."""
    engine: Engine = request.app.state.engine
    return engine


def notify_settings(request: Request) -> NotifySettings:
    """The ``[notify]`` settings, as the app keeps them."""
    settings: NotifySettings = request.app.state.settings.notify
    return settings


def monitor_clock(request: Request) -> Callable[[], float]:
    """The monitor's clock: the app's ``clock`` if it has one, else wall time."""
    clock: Callable[[], float] = getattr(request.app.state, "clock", time.time)
    return clock


EngineDep = Annotated[Engine, Depends(database)]
SettingsDep = Annotated[NotifySettings, Depends(notify_settings)]
ClockDep = Annotated[Callable[[], float], Depends(monitor_clock)]


def get_session(engine: EngineDep) -> Iterator[Session]:
    with Session(engine) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]
