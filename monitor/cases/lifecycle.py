"""A case's lifecycle: which status may follow which, and the event every move leaves behind.

Every change of a case's status goes through :func:`transition`, so the history of a case is
its events, each with who and when, and an impossible move (closing a case twice, resolving
a false alarm) is refused with a clear error instead of silently rewriting history.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from monitor.store import Case, CaseEvent

ALLOWED: dict[str, frozenset[str]] = {
    "open": frozenset({"notified", "acknowledged", "visit_scheduled", "resolved", "false_alarm"}),
    "notified": frozenset({"acknowledged", "visit_scheduled", "resolved", "false_alarm"}),
    "acknowledged": frozenset({"visit_scheduled", "resolved", "false_alarm"}),
    "visit_scheduled": frozenset({"resolved", "false_alarm", "acknowledged"}),
    "resolved": frozenset({"closed", "open"}),
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
    kind = "reopened" if to == "open" else to
    case.status = to
    if to in ("resolved", "closed") and case.resolved_at is None:
        case.resolved_at = at
    if to == "open":
        case.resolved_at = None
        case.closed_at = None
    session.add(case)
    assert case.id is not None, "a case must be flushed before it changes status"
    event = CaseEvent(case_id=case.id, at_wall=at, kind=kind, actor=actor, detail=detail or {})
    session.add(event)
    return event
