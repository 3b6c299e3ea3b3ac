"""Turning alarms into cases: one open case per device and problem, whatever the timing.

The database enforces the rule with a partial unique index (see ``monitor.store.models``).
Each opening runs in a savepoint: if another message or another monitor process got there
first, the insert fails on that index and the alarm joins the existing case instead.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from monitor.cases.lifecycle import ALLOWED, open_case, transition
from monitor.cases.noise.base import Suppressed
from monitor.cases.plot import NothingToPlotError, render_case_plot
from monitor.config import NotifySettings
from monitor.notify.escalation import customer_must_hear, enqueue_case_escalated
from monitor.notify.outbox import enqueue_case_opened
from monitor.notify.support import enqueue_incident_opened
from monitor.store import Case, CaseEvent, Customer, Device
from monitor.store.models import MONITOR_ACTOR, FleetIncident
from rules.engine import Alarm, Cleared
from rules.model import SEVERITY_RANK

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Escalation:
    """An open case raised from severity ``before`` to ``case.severity``."""

    case: Case
    before: str


class CaseOpener:
    """The cases stage: alarms in, newly opened cases out (with their notifications queued).

    It also queues what escalations of open cases and newly opened fleet incidents tell
    support (see :meth:`announce_incidents`)."""

    def __init__(
        self,
        notify: NotifySettings,
        *,
        enqueue: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``enqueue=False`` opens cases without queueing any notification (backtests).
        ``clock`` is the monitor's clock: wall time live, simulated time in a simulation (it
        decides when messages fall due, quiet hours included)."""
        self._notify = notify
        self._enqueue = enqueue
        self._clock = clock

    def run(self, session: Session, alarms: list[Alarm]) -> list[Case]:
        opened: list[Case] = []
        for alarm in alarms:
            if alarm.escalation:
                escalation = escalate(session, alarm, self._clock())
                if escalation is not None and self._enqueue:
                    self._announce_escalation(session, escalation, alarm)
                continue
            if "open_case" not in alarm.actions:
                continue
            case = self._open(session, alarm)
            if case is not None:
                opened.append(case)
        return opened

    def announce_incidents(self, session: Session, suppressed: list[Suppressed]) -> int:
        """Queue engineering's message for each fleet incident that ``suppressed`` opened
        (never a customer message); returns how many rows were added."""
        if not self._enqueue:
            return 0
        added = 0
        for item in suppressed:
            detail = item.verdict.detail
            if item.verdict.reason != "fleet_incident" or not detail.get("opened"):
                continue
            incident = session.get(FleetIncident, detail["incident_id"])
            if incident is not None:
                rows = enqueue_incident_opened(
                    session, incident, self._notify, self._clock(), deviating=detail["deviating"]
                )
                added += len(rows)
        return added

    def _announce_escalation(self, session: Session, escalation: Escalation, alarm: Alarm) -> None:
        to_customer = "notify_customer" in alarm.actions
        to_support = "notify_support" in alarm.actions
        case = escalation.case
        device = session.get(Device, case.device_id)
        if device is None or not (to_customer or to_support):
            return
        customer = _customer_of(session, device)
        urgent_first = to_customer and customer is not None and customer_must_hear(case)
        enqueue_case_escalated(
            session,
            case,
            escalation.before,
            device=device,
            customer=customer,
            settings=self._notify,
            now=self._clock(),
            to_customer=to_customer,
            to_support=to_support,
            plot=_plot_or_none(case) if urgent_first else None,
        )

    def record_cleared(self, session: Session, cleared: list[Cleared]) -> int:
        """Note on each open case that the rule which opened it has cleared (the device is
        back within the rule's clear condition). The case stays open for support to close,
        unless the rule resolves its cases on clearing. Returns how many cases were noted."""
        noted = 0
        for event in cleared:
            case = open_case(session, event.device_id, event.problem)
            if case is None or case.id is None or case.rule != event.rule:
                continue
            now = self._clock()
            session.add(
                CaseEvent(
                    case_id=case.id,
                    at_wall=now,
                    kind="condition_cleared",
                    detail={"rule": event.rule, "at": event.at},
                )
            )
            if event.resolve and "resolved" in ALLOWED.get(case.status, frozenset()):
                transition(
                    session,
                    case,
                    "resolved",
                    actor=MONITOR_ACTOR,
                    at=now,
                    detail={"rule": event.rule, "reason": "condition cleared"},
                )
            noted += 1
        return noted

    def _open(self, session: Session, alarm: Alarm) -> Case | None:
        if open_case(session, alarm.device_id, alarm.problem) is not None:
            return None
        now = self._clock()
        case = Case(
            device_id=alarm.device_id,
            problem=alarm.problem,
            rule=alarm.rule,
            severity=alarm.severity,
            opened_at=alarm.at,
            created_wall=now,
            predicted_failure_at=alarm.predicted_failure_at,
            suggested_action=alarm.suggested_action.strip(),
            evidence=alarm.evidence,
        )
        try:
            with session.begin_nested():
                session.add(case)
                session.flush()
        except IntegrityError:
            log.info(
                "case already open; alarm joins it",
                extra={"device_id": alarm.device_id, "problem": alarm.problem},
            )
            return None
        assert case.id is not None
        session.add(
            CaseEvent(case_id=case.id, at_wall=now, kind="opened", detail={"rule": alarm.rule})
        )
        device = session.get(Device, alarm.device_id)
        customer = _customer_of(session, device) if device is not None else None
        to_customer = "notify_customer" in alarm.actions
        to_support = "notify_support" in alarm.actions
        if self._enqueue and device is not None and (to_customer or to_support):
            enqueue_case_opened(
                session,
                case,
                device,
                customer,
                self._notify,
                now,
                plot=_plot_or_none(case) if to_customer else None,
                to_customer=to_customer,
                to_support=to_support,
            )
        return case


def _customer_of(session: Session, device: Device) -> Customer | None:
    return session.get(Customer, device.customer_id) if device.customer_id else None


def _plot_or_none(case: Case) -> bytes | None:
    # A case without a time series still gets its message, just without the picture.
    try:
        return render_case_plot(case)
    except NothingToPlotError:
        return None


def escalate(session: Session, alarm: Alarm, now: float) -> Escalation | None:
    """Raise the open case of the alarm's device and problem to the alarm's severity
    (None if there is no open case, or it is already as severe)."""
    case = open_case(session, alarm.device_id, alarm.problem)
    if case is None or case.id is None:
        return None
    if SEVERITY_RANK.get(alarm.severity, 0) <= SEVERITY_RANK.get(case.severity, 0):
        return None
    before, case.severity = case.severity, alarm.severity
    session.add(case)
    session.add(
        CaseEvent(
            case_id=case.id,
            at_wall=now,
            kind="escalated",
            detail={"rule": alarm.rule, "from": before, "to": alarm.severity, "at": alarm.at},
        )
    )
    return Escalation(case, before)
