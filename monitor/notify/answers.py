"""What a customer's click does: store a survey answer, or record that they want a visit.

Called by the feedback routes (:mod:`monitor.api.feedback`) with a verified
:class:`~monitor.notify.links.LinkClaim`; the caller commits.
"""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from monitor.cases.lifecycle import transition
from monitor.notify.links import LinkClaim
from monitor.store import Case, CaseEvent, SurveyResponse

_AWAITING_CUSTOMER = frozenset({"open", "notified"})


class UnknownCaseError(LookupError):
    """The link names a case that does not exist (any more)."""


def record_answer(session: Session, claim: LinkClaim, now: float) -> SurveyResponse:
    """Store ``claim``'s score as the answer to its question on its case.

    One answer per case and question: clicking another score replaces the first (the
    customer changed their mind), clicking the same one again changes nothing.
    """
    assert claim.score is not None
    _case(session, claim.case_id)
    answer = _existing(session, claim)
    if answer is None:
        answer = SurveyResponse(
            case_id=claim.case_id,
            customer_id=claim.customer_id,
            question=claim.question,
            score=claim.score,
            answered_at=now,
        )
        try:
            with session.begin_nested():
                session.add(answer)
        except IntegrityError:
            # Two clicks at once: the other one stored it first; ours replaces it below.
            answer = _existing(session, claim)
            assert answer is not None
    if answer.score != claim.score or answer.answered_at != now:
        answer.score, answer.answered_at = claim.score, now
        session.add(answer)
    kind = "feedback" if claim.question == "helpful" else "survey_answered"
    detail = {"question": claim.question, "score": claim.score}
    session.add(
        CaseEvent(case_id=claim.case_id, at_wall=now, kind=kind, actor="customer", detail=detail)
    )
    return answer


def request_visit(session: Session, claim: LinkClaim, now: float) -> Case:
    """Record that the customer wants a visit; a case still waiting for them is acknowledged."""
    case = _case(session, claim.case_id)
    detail = {"visit_requested": True}
    if case.status in _AWAITING_CUSTOMER:
        transition(session, case, "acknowledged", actor="customer", at=now, detail=detail)
    else:
        session.add(
            CaseEvent(
                case_id=claim.case_id, at_wall=now, kind="feedback", actor="customer", detail=detail
            )
        )
    return case


def _case(session: Session, case_id: int) -> Case:
    case = session.get(Case, case_id)
    if case is None:
        raise UnknownCaseError(f"case {case_id} does not exist")
    return case


def _existing(session: Session, claim: LinkClaim) -> SurveyResponse | None:
    query = select(SurveyResponse).where(
        col(SurveyResponse.case_id) == claim.case_id,
        col(SurveyResponse.question) == claim.question,
    )
    return session.exec(query).first()
