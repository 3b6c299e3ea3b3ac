"""A case's lifecycle: which status may follow which, and the event every move leaves behind.

Every change of a case's status goes through :func:`transition`, so the history of a case is
its events, each with who and when, and an impossible move (closing a case twice, resolving
a false alarm) is refused with a clear error instead of silently rewriting history.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from monitor.store import Case, CaseEvent
from monitor.store.models import OPEN_CASE_STATUSES

ALLOWED: dict[str, frozenset[str]] = {
    "open": frozenset({"notified", "acknowledged", "visit_scheduled", "resolved", "false_alarm"}),
    "notified": frozenset({"acknowledged", "visit_scheduled", "resolved", "false_alarm"}),
    "acknowledged": frozenset({"visit_scheduled", "resolved", "false_alarm"}),
    "visit_scheduled": frozenset({"resolved", "false_alarm", "acknowledged"}),
    # A technician who found nothing wrong turns a resolved case into a false alarm.
    "resolved": frozenset({"closed", "open", "false_alarm"}),
    "closed": frozenset({"open"}),
    "false_alarm": frozenset({"open"}),
}
"""From each status, the statuses a case may move to. Moving back to "open" is a reopening."""


class TransitionError(ValueError):
    """A status change the lifecycle does not allow; the message says what would be."""


def transition(
    session: Session,
    case: Case,
    to: str,
    *,
    actor: str,
    at: float,
    detail: dict[str, Any] | None = None,
) -> CaseEvent:
    """Move ``case`` to status ``to`` and record who did it and when (``at``: monitor clock).

    The caller commits. Reopening records a ``reopened`` event; reaching "resolved" or
    "closed" stamps :attr:`Case.resolved_at` the first time.
    """
    allowed = ALLOWED.get(case.status, frozenset())
    if to not in allowed:
        options = ", ".join(sorted(allowed)) or "none"
        raise TransitionError(
            f"case {case.id} is {case.status!r} and cannot become {to!r}; allowed: {options}"
        )
    if to == "open":
        _refuse_second_open_case(session, case)
    kind = "reopened" if to == "open" else to
    case.status = to
    if to in ("resolved", "closed") and case.resolved_at is None:
        case.resolved_at = at
    if to == "open":
        case.resolved_at = None
        case.closed_at = None
    session.add(case)
    assert case.id is not None, "a case must be flushed before it changes status"
    if to == "open":
        _flush_reopening(session, case)
    event = CaseEvent(case_id=case.id, at_wall=at, kind=kind, actor=actor, detail=detail or {})
    session.add(event)
    return event


ACTIONS: dict[str, str] = {
    "ack": "acknowledged",
    "schedule-visit": "visit_scheduled",
    "resolve": "resolved",
    "close": "closed",
    "reopen": "open",
    "false-alarm": "false_alarm",
}
"""What support people call each move (CLI commands, API paths) and the status it leads to."""


def act(
    session: Session,
    case: Case,
    action: str,
    *,
    actor: str,
    at: float,
    detail: dict[str, Any] | None = None,
) -> CaseEvent:
    """Apply a named action from :data:`ACTIONS` (``TransitionError`` if unknown or refused)."""
    to = ACTIONS.get(action)
    if to is None:
        raise TransitionError(f"unknown action {action!r}; known: {', '.join(sorted(ACTIONS))}")
    return transition(session, case, to, actor=actor, at=at, detail=detail)


def add_note(session: Session, case: Case, text: str, *, actor: str, at: float) -> CaseEvent:
    """A free-text note on the case's history; notes never change its status."""
    if not text.strip():
        raise TransitionError("a note needs some text")
    return _event(session, case, "note", actor=actor, at=at, detail={"text": text.strip()})


def assign(session: Session, case: Case, assignee: str, *, actor: str, at: float) -> CaseEvent:
    """Give the case to ``assignee`` (empty string: unassign), recording the previous one."""
    previous = case.assignee
    case.assignee = assignee.strip() or None
    session.add(case)
    return _event(
        session,
        case,
        "assigned",
        actor=actor,
        at=at,
        detail={"from": previous, "to": case.assignee},
    )


def _event(
    session: Session, case: Case, kind: str, *, actor: str, at: float, detail: dict[str, Any]
) -> CaseEvent:
    assert case.id is not None, "a case must be flushed before events are added"
    event = CaseEvent(case_id=case.id, at_wall=at, kind=kind, actor=actor, detail=detail)
    session.add(event)
    return event


def open_case(
    session: Session, device_id: str, problem: str, *, besides: int | None = None
) -> Case | None:
    """The device's open case for the problem, other than case ``besides`` (at most one: the
    database sees to it)."""
    query = select(Case).where(
        Case.device_id == device_id,
        Case.problem == problem,
        col(Case.status).in_(OPEN_CASE_STATUSES),
    )
    if besides is not None:
        query = query.where(Case.id != besides)
    return session.exec(query).first()


def _refuse_second_open_case(session: Session, case: Case) -> None:
    # Reopening is refused, not merged, when another case is already open for the device and
    # problem: merging would rewrite one of the two histories; the people on the open case
    # carry on there (and can note the old case's id).
    other = open_case(session, case.device_id, case.problem, besides=case.id)
    if other is not None:
        raise TransitionError(
            f"case {case.id} cannot be reopened: case {other.id} is already open for device "
            f"{case.device_id!r} and problem {case.problem!r}; add a note there instead"
        )


def _flush_reopening(session: Session, case: Case) -> None:
    # The check above can race with an alarm opening a new case; the partial unique index has
    # the last word, and a savepoint keeps the caller's transaction usable when it refuses.
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError as exc:
        session.refresh(case)
        raise TransitionError(
            f"case {case.id} cannot be reopened: another case was just opened for device "
            f"{case.device_id!r} and problem {case.problem!r}"
        ) from exc
