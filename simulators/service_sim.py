"""Simulated owners and support team acting on the monitor's database, in simulated time.

This is the one module of ``simulators`` that imports the monitor: it plays the people who use
it. In production they act through the links in the messages and the support console; here
they write the same rows directly — case transitions through
:func:`monitor.cases.lifecycle.transition`, reactive tickets (``Case.source = "reactive"``),
survey answers (:class:`~monitor.store.SurveyResponse`) and a ``customer_left`` case event
when an owner leaves.

What happens, per device of the fleet (see :mod:`simulators.owners` and
:mod:`simulators.support_team` for the timings and answers):

* the owner reads each customer message the outbox sent, after a delay (longer at night),
  clicks "was this helpful?", acknowledges the case and books a visit;
* at the fault's failure time the owner notices, unless the product was repaired before: they
  report it on the open case, or open a reactive ticket that the support team calls back
  about in office hours;
* a technician visits, repairs a real fault (resolved, closed a day later) or finds nothing
  (false alarm); the owner answers the survey and may leave.

Without a monitor (nothing opens proactive cases) the same loop is the reactive baseline.
"""

from __future__ import annotations

import heapq
import itertools
from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from monitor.cases.lifecycle import transition
from monitor.report import CUSTOMER_LEFT, is_problem_message, sent_messages
from monitor.store import Case, CaseEvent, Outbox, SurveyResponse
from monitor.store.models import OPEN_CASE_STATUSES
from simulators.fleet import Device, Fleet
from simulators.owners import Experience, Owner
from simulators.support_team import SupportTeam
from simulators.weather import DAY

REACTIVE_PROBLEM = "customer_report"
_NPS_INTERVAL_S = 90 * DAY
_CLOSE_AFTER_S = DAY
_OWNER, _SUPPORT = "customer", "support"
_SURVEY_KEY = 10**9
"""Offsets the survey's read delay draw from the messages' (keyed by outbox id)."""


@dataclass(order=True)
class _Event:
    at: float
    order: int
    action: str = field(compare=False)
    target: str = field(compare=False)
    """A case id, or a device id for "notice"."""
    urgent: bool = field(default=False, compare=False)


class CustomerLoop:
    """The owners and support team of ``fleet``, acting on the database behind ``engine``.

    Call :meth:`advance` with increasing simulated times; each call first picks up the cases
    and messages the monitor produced meanwhile, then plays every action due by then.
    """

    def __init__(self, fleet: Fleet, engine: Engine) -> None:
        self.fleet = fleet
        self.engine = engine
        self.team = SupportTeam(fleet.seed)
        self.owners = {d.device_id: Owner(d.customer, fleet.seed, d.number) for d in fleet.devices}
        self.devices: dict[str, Device] = {d.device_id: d for d in fleet.devices}
        self.repaired_at: dict[str, float] = {}
        """When each repaired device was fixed: its telemetry is healthy from then on."""
        self.now = fleet.start
        self._events: list[_Event] = []
        self._order = itertools.count()
        self._reads: dict[int, int] = defaultdict(int)
        self._seen_messages: set[int] = set()
        self._nps_asked: dict[str, float] = {}
        self._left: set[str] = set()
        self._noticed: dict[str, float] = {}
        for device in fleet.devices:
            for fault in device.faults:
                # The monitor sees nothing after the fleet's end, so neither does its owner.
                if fault.failure < fleet.end:
                    self._push(fault.failure, "notice", device.device_id)

    def advance(self, until: float) -> None:
        """Play everything that happens up to ``until`` (simulated epoch seconds)."""
        with Session(self.engine) as session:
            self._pick_up_messages(session, until)
            while self._events and self._events[0].at <= until:
                event = heapq.heappop(self._events)
                self.now = event.at
                getattr(self, f"_{event.action}")(session, event)
                session.flush()
            session.commit()
        self.now = max(self.now, until)

    def _push(self, at: float, action: str, target: str | int, *, urgent: bool = False) -> None:
        heapq.heappush(self._events, _Event(at, next(self._order), action, str(target), urgent))

    def _pick_up_messages(self, session: Session, until: float) -> None:
        query = select(Outbox).where(
            col(Outbox.status) == "sent",
            col(Outbox.sent_at) <= until,
            col(Outbox.id).not_in(self._seen_messages or {-1}),
        )
        for row in session.exec(query.order_by(col(Outbox.sent_at), col(Outbox.id))):
            assert row.id is not None
            assert row.sent_at is not None
            self._seen_messages.add(row.id)
            case = session.get(Case, row.case_id) if row.case_id is not None else None
            if case is None or case.id is None or not is_problem_message(row):
                continue
            self._already_noticed(session, case)
            owner = self.owners.get(case.device_id)
            if owner is not None:
                self._push(owner.read_at(row.sent_at, row.id), "read", case.id)

    # The owner ----------------------------------------------------------------------------

    def _read(self, session: Session, event: _Event) -> None:
        case = _case(session, event.target)
        self._reads[case.id or 0] += 1
        if case.status not in OPEN_CASE_STATUSES or self._reads[case.id or 0] > 1:
            return
        owner = self.owners[case.device_id]
        key = case.id or 0
        helpful = owner.finds_helpful(self._experience(session, case), key)
        if helpful is not None:
            session.add(self._answer(case, "helpful", helpful))
        if case.status in ("open", "notified"):
            transition(session, case, "acknowledged", actor=_OWNER, at=event.at)
        booked = owner.books_visit(event.at, key)
        if booked is None:
            # Not booked: the support team phones the owner the next office day.
            offset = owner.customer.site.utc_offset_h
            booked = self.team.call_back_at(event.at + DAY, offset, key)
        self._push(booked, "book", key)

    def _notice(self, session: Session, event: _Event) -> None:
        device_id = event.target
        if device_id in self.repaired_at:
            return  # fixed before it failed: there is nothing to notice
        self._noticed[device_id] = event.at
        query = select(Case).where(
            Case.device_id == device_id,
            col(Case.status).in_(OPEN_CASE_STATUSES),
            col(Case.opened_at) <= event.at,
        )
        case = session.exec(query.order_by(col(Case.opened_at))).first()
        if case is None:
            self._open_reactive(session, device_id, event.at)
            return
        if case.customer_noticed_at is None:
            case.customer_noticed_at = event.at
            session.add(case)
        if case.status in ("open", "notified"):
            # The product stopped working before the owner read or acted: they phone now.
            self._push(self._call_back(case, event.at), "phone", case.id or 0)

    def _already_noticed(self, session: Session, case: Case) -> None:
        # A case the monitor opens after the owner reported the failure was not news to them.
        noticed = self._noticed.get(case.device_id)
        fixed = self.repaired_at.get(case.device_id)
        if noticed is None or case.customer_noticed_at is not None or case.opened_at < noticed:
            return
        if fixed is None or case.opened_at < fixed:
            case.customer_noticed_at = noticed
            session.add(case)

    def _survey(self, session: Session, event: _Event) -> None:
        case = _case(session, event.target)
        owner = self.owners[case.device_id]
        customer_id = owner.customer.customer_id
        if customer_id in self._left:
            return
        key = case.id or 0
        experience = self._experience(session, case)
        csat = None
        if owner.answers_survey(key):
            asked = self._nps_asked.get(customer_id)
            ask_nps = asked is None or event.at - asked >= _NPS_INTERVAL_S
            answers = owner.answers(experience, key, ask_nps=ask_nps)
            csat = answers.csat
            session.add(self._answer(case, "csat", answers.csat))
            session.add(self._answer(case, "ces", answers.ces))
            if answers.nps is not None:
                self._nps_asked[customer_id] = event.at
                session.add(self._answer(case, "nps", answers.nps))
        if owner.leaves(experience, csat, key):
            self._left.add(customer_id)
            session.add(CaseEvent(case_id=key, at_wall=event.at, kind=CUSTOMER_LEFT, actor=_OWNER))

    # The support team ---------------------------------------------------------------------

    def _open_reactive(self, session: Session, device_id: str, at: float) -> None:
        case = Case(
            device_id=device_id,
            problem=REACTIVE_PROBLEM,
            rule="customer_call",
            severity="major",
            opened_at=at,
            created_wall=at,
            source="reactive",
            customer_noticed_at=at,
            suggested_action="The customer reports the product is not working: visit.",
        )
        session.add(case)
        session.flush()
        assert case.id is not None
        session.add(CaseEvent(case_id=case.id, at_wall=at, kind="opened", actor=_OWNER))
        self._push(self._call_back(case, at), "phone", case.id)

    def _call_back(self, case: Case, at: float) -> float:
        offset = self.devices[case.device_id].customer.site.utc_offset_h
        return self.team.call_back_at(at, offset, case.id or 0)

    def _phone(self, session: Session, event: _Event) -> None:
        case = _case(session, event.target)
        if case.status not in OPEN_CASE_STATUSES:
            return
        if case.notified_at is None:
            case.notified_at = event.at
        if case.status == "open":
            transition(session, case, "notified", actor=_SUPPORT, at=event.at)
        # On the phone the visit is booked at once, urgently: the product has failed.
        self._book_visit(session, case, event.at, urgent=True, actor=_SUPPORT)

    def _book(self, session: Session, event: _Event) -> None:
        case = _case(session, event.target)
        self._book_visit(session, case, event.at, urgent=event.urgent, actor=_OWNER)

    def _book_visit(
        self, session: Session, case: Case, at: float, *, urgent: bool, actor: str
    ) -> None:
        if case.status not in ("open", "notified", "acknowledged"):
            return
        offset = self.devices[case.device_id].customer.site.utc_offset_h
        visit = self.team.visit_at(at, offset, case.id or 0, urgent=urgent)
        transition(session, case, "visit_scheduled", actor=actor, at=at, detail={"visit_at": visit})
        self._push(visit, "visit", case.id or 0)

    def _visit(self, session: Session, event: _Event) -> None:
        case = _case(session, event.target)
        if case.status != "visit_scheduled":
            return
        device = self.devices[case.device_id]
        faulty = any(f.onset <= event.at for f in device.faults)
        if faulty and case.device_id not in self.repaired_at:
            self._push(event.at + self.team.repair_seconds(case.id or 0), "repaired", case.id or 0)
            return
        transition(
            session,
            case,
            "false_alarm",
            actor=_SUPPORT,
            at=event.at,
            detail={"reason": "technician found nothing wrong"},
        )
        self._push_survey(case, event.at)

    def _repaired(self, session: Session, event: _Event) -> None:
        case = _case(session, event.target)
        self.repaired_at.setdefault(case.device_id, event.at)
        if case.status not in OPEN_CASE_STATUSES:
            return  # already resolved with another case of the same device, when that was fixed
        transition(session, case, "resolved", actor=_SUPPORT, at=event.at)
        # Whatever else is open on the device was the same broken product: fixed too.
        others = select(Case).where(
            Case.device_id == case.device_id,
            col(Case.status).in_(OPEN_CASE_STATUSES),
            Case.id != case.id,
        )
        for other in session.exec(others):
            transition(
                session, other, "resolved", actor=_SUPPORT, at=event.at, detail={"with": case.id}
            )
            self._push(event.at + _CLOSE_AFTER_S, "close", other.id or 0)
        self._push(event.at + _CLOSE_AFTER_S, "close", case.id or 0)
        self._push_survey(case, event.at)

    def _push_survey(self, case: Case, ended_at: float) -> None:
        # The survey is sent when the case ends; the owner answers once they read it.
        owner = self.owners[case.device_id]
        self._push(owner.read_at(ended_at, _SURVEY_KEY + (case.id or 0)), "survey", case.id or 0)

    def _close(self, session: Session, event: _Event) -> None:
        case = _case(session, event.target)
        if case.status == "resolved":
            transition(session, case, "closed", actor=_SUPPORT, at=event.at)

    # Facts about a case -------------------------------------------------------------------

    def _experience(self, session: Session, case: Case) -> Experience:
        rows = session.exec(select(Outbox).where(Outbox.case_id == case.id))
        sent = sorted(sent_messages(rows).get(case.id or 0, {}).values())
        first = sent[0] if sent else None
        contacted_early = first is not None and (
            case.customer_noticed_at is None or first < case.customer_noticed_at
        )
        failure = min((f.failure for f in self.devices[case.device_id].faults), default=None)
        fixed_at = case.resolved_at
        fixed_before = fixed_at is not None and (failure is None or fixed_at < failure)
        began = case.customer_noticed_at if case.customer_noticed_at is not None else first
        ended = fixed_at if fixed_at is not None else self.now
        return Experience(
            contacted_early=contacted_early,
            fixed_before_failure=fixed_before,
            messages=len(sent),
            false_alarm=case.status == "false_alarm",
            days_waiting=max(0.0, ended - (began if began is not None else case.opened_at)) / DAY,
        )

    def _answer(self, case: Case, question: str, score: int) -> SurveyResponse:
        customer_id = self.owners[case.device_id].customer.customer_id
        return SurveyResponse(
            case_id=case.id or 0,
            customer_id=customer_id,
            question=question,
            score=score,
            answered_at=self.now,
        )


def _case(session: Session, case_id: str) -> Case:
    case = session.get(Case, int(case_id))
    if case is None:
        raise LookupError(f"case {case_id} vanished from the database during the simulation")
    return case
