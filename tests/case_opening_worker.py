"""Opens a case for one alarm at an agreed instant: run twice at once to race two processes.

Usage: python -m tests.case_opening_worker DATABASE_URL START_AT_EPOCH
Prints the ids of the cases it opened (none if the other process won).
"""

from __future__ import annotations

import sys
import time

from sqlmodel import Session

from monitor.cases import CaseOpener
from monitor.config import NotifySettings
from monitor.store import open_database
from rules.engine import Alarm


def alarm(at: float) -> Alarm:
    return Alarm(
        device_id="pump-1",
        rule="sustained-deviation",
        problem="degradation",
        severity="warning",
        since=at - 3600,
        at=at,
        suggested_action="Inspect the pump.",
        actions=("open_case", "notify_customer"),
    )


def open_one(url: str, start_at: float) -> list[int]:
    engine = open_database(url)
    opener = CaseOpener(NotifySettings())
    with Session(engine) as session:
        session.connection()  # connect before the agreed instant, so both start together
        time.sleep(max(0.0, start_at - time.time()))
        cases = opener.run(session, [alarm(1_700_000_000.0)])
        session.commit()
        return [c.id or 0 for c in cases]


if __name__ == "__main__":
    print(open_one(sys.argv[1], float(sys.argv[2])))
