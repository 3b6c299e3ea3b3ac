"""The service report: the customer-service figures, computed from the database alone.

A *problem* is a case that was not a false alarm. Every figure is over the cases opened since
``since`` (event time), whatever their source ("proactive": opened by a rule; "reactive": the
customer reported it first).

* proactive share: problems whose customer was contacted before noticing it themselves
  (first response earlier than ``customer_noticed_at``, or the customer never noticed).
* lead time: a proactive case's forecast failure time minus its opening — what the monitor
  could tell the customer; a live database cannot know when a prevented failure would have
  happened (the benchmark adds the true lead time from the simulator's ground truth).
* FRT: case opened → first response. The first response is ``Case.notified_at`` or, when that
  is not stamped, the first customer message the outbox sent. ``frt`` is over proactive cases
  (the automated message), ``frt_reactive`` over reactive ones (the support team's call-back).
  ``frt_awake`` is ``frt`` with the wait for the customer's quiet hours to end taken out: the
  monitor's own speed, where ``frt`` is what the customer experienced.
* ART: case opened → resolved, over resolved problems; resolution rate: resolved problems
  over problems.
* CSAT: share of 4 and 5 answers (1–5); CES: mean (1–7, higher is easier); NPS: promoters
  (9–10) minus detractors (0–6), in points; helpful: share of "yes" clicks.
* retention: customers without a ``customer_left`` event, over all customers, and over the
  customers who had a problem.
* messages per problem: customer messages sent per problem, surveys excluded; one message is
  one purpose (the announcement, each reminder), on however many channels it went out.
* suppressed notifications by reason: alarms noise control kept from becoming a case (the
  ``suppression`` table, by ``reason``), ``suppressed`` case
  events by their ``reason``, and outbox rows that ended in any status other than pending or
  sent (as ``outbox_<status>``).
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from monitor.notify.channels import SUPPORT_CHANNELS
from monitor.notify.quiet_hours import quiet_until
from monitor.store import Case, CaseEvent, Customer, Device, Outbox, SurveyResponse
from monitor.store.models import Suppression

CUSTOMER_LEFT = "customer_left"
"""The case event recording that the customer left (churned) after that case."""
SURVEY_PURPOSES = ("survey", "csat", "nps")
FINISHED_STATUSES = frozenset({"pending", "sent"})
QUANTILES = (0.1, 0.5, 0.9)


def quiet_wait(row: Outbox, opened_at: float) -> float:
    """Seconds of a message's delay that the customer's quiet hours account for: a case opened
    at 3 a.m. for a customer who sleeps until 7 waits four hours on purpose."""
    quiet = row.payload.get("quiet")
    wake = quiet_until(quiet["hours"], quiet["timezone"], opened_at) if quiet else None
    return max(0.0, wake - opened_at) if wake is not None else 0.0


def is_problem_message(row: Outbox) -> bool:
    """True for a message to the customer about the problem itself (not a survey)."""
    return row.channel not in SUPPORT_CHANNELS and not row.purpose.startswith(SURVEY_PURPOSES)


def sent_problem_messages(rows: Iterable[Outbox]) -> Iterator[tuple[int, float, Outbox]]:
    """``(case id, sent at, row)`` of each row that told a customer about their case's problem
    and went out (incident messages have no case: they go to engineering)."""
    for row in rows:
        if row.case_id is None or row.status != "sent" or row.sent_at is None:
            continue
        if is_problem_message(row):
            yield row.case_id, row.sent_at, row


def sent_messages(rows: Iterable[Outbox]) -> dict[int, dict[str, float]]:
    """Per case, each problem message (by purpose) and when it first went out on any channel."""
    sent: dict[int, dict[str, float]] = defaultdict(dict)
    for case_id, sent_at, row in sent_problem_messages(rows):
        earlier = sent[case_id].get(row.purpose, sent_at)
        sent[case_id][row.purpose] = min(earlier, sent_at)
    return sent


@dataclass(frozen=True)
class Distribution:
    """Count, mean and the 10th/50th/90th percentiles of a duration, in seconds."""

    count: int
    mean: float | None
    p10: float | None
    p50: float | None
    p90: float | None
    maximum: float | None

    @classmethod
    def of(cls, values: Iterable[float]) -> Distribution:
        ordered = sorted(values)
        if not ordered:
            return cls(0, None, None, None, None, None)
        p10, p50, p90 = (_percentile(ordered, q) for q in QUANTILES)
        return cls(len(ordered), sum(ordered) / len(ordered), p10, p50, p90, ordered[-1])


@dataclass(frozen=True)
class ServiceReport:
    """The figures; ``None`` where there is nothing to compute them from."""

    since: float | None
    cases: int
    problems: int
    false_alarms: int
    proactive_share: float | None
    lead_time: Distribution
    frt: Distribution
    frt_awake: Distribution
    frt_reactive: Distribution
    art: Distribution
    resolution_rate: float | None
    csat: float | None
    ces: float | None
    nps: float | None
    helpful_share: float | None
    survey_answers: int
    retention: float | None
    retention_affected: float | None
    messages_per_problem: float | None
    max_messages_per_problem: int
    suppressed: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


def build_report(engine: Engine, since: float | None = None) -> ServiceReport:
    """Compute the service report from the database (cases opened at or after ``since``)."""
    with Session(engine) as session:
        query = select(Case)
        if since is not None:
            query = query.where(col(Case.opened_at) >= since)
        cases = list(session.exec(query))
        ids = [c.id for c in cases if c.id is not None]
        messages = _in_cases(session, Outbox, Outbox.case_id, ids)
        events = _in_cases(session, CaseEvent, CaseEvent.case_id, ids)
        answers = _in_cases(session, SurveyResponse, SurveyResponse.case_id, ids)
        customers = len(list(session.exec(select(Customer.id))))
        owners = _owners(session, cases)
        suppressions = suppression_reasons(session, since)
    report = compute_report(cases, messages, events, answers, customers, owners, since)
    if not suppressions:
        return report
    merged = Counter(report.suppressed) + suppressions
    return dataclasses.replace(report, suppressed=dict(sorted(merged.items())))


def compute_report(  # noqa: PLR0917 -- the tables, in the order the docstring names them
    cases: Sequence[Case],
    messages: Sequence[Outbox],
    events: Sequence[CaseEvent],
    answers: Sequence[SurveyResponse],
    customers: int,
    owners: dict[int, str],
    since: float | None = None,
) -> ServiceReport:
    """The figures from plain rows (``owners``: case id → customer id)."""
    problems = [c for c in cases if c.status != "false_alarm"]
    sent = sent_messages(messages)
    first = {c.id: _first_response(c, list(sent.get(c.id or -1, {}).values())) for c in cases}
    contacted = [c for c in problems if first[c.id] is not None and _before_noticed(c, first[c.id])]
    left = {owners.get(e.case_id) for e in events if e.kind == CUSTOMER_LEFT} - {None}
    affected = {owners[c.id] for c in problems if c.id in owners}
    by_question: dict[str, list[int]] = defaultdict(list)
    for answer in answers:
        by_question[answer.question].append(answer.score)
    counts = [len(sent.get(c.id or -1, {})) for c in problems]
    resolved = [c for c in problems if c.resolved_at is not None]
    return ServiceReport(
        since=since,
        cases=len(cases),
        problems=len(problems),
        false_alarms=len(cases) - len(problems),
        proactive_share=share_of(len(contacted), len(problems)),
        lead_time=Distribution.of(
            c.predicted_failure_at - c.opened_at
            for c in problems
            if c.source == "proactive" and c.predicted_failure_at is not None
        ),
        frt=_response_times(cases, first, "proactive"),
        frt_awake=_awake_response_times(cases, messages),
        frt_reactive=_response_times(cases, first, "reactive"),
        art=Distribution.of(
            c.resolved_at - c.opened_at for c in resolved if c.resolved_at is not None
        ),
        resolution_rate=share_of(len(resolved), len(problems)),
        csat=share_of(sum(1 for s in by_question["csat"] if s >= 4), len(by_question["csat"])),
        ces=mean_of(by_question["ces"]),
        nps=nps_of(by_question["nps"]),
        helpful_share=share_of(
            sum(1 for s in by_question["helpful"] if s), len(by_question["helpful"])
        ),
        survey_answers=len(answers),
        retention=share_of(customers - len(left), customers),
        retention_affected=share_of(len(affected - left), len(affected)),
        messages_per_problem=mean_of(counts),
        max_messages_per_problem=max(counts, default=0),
        suppressed=_suppressed(messages, events),
    )


def _in_cases(session: Session, table: Any, column: Any, ids: list[int]) -> list[Any]:
    rows: list[Any] = []
    # Chunked: PostgreSQL and SQLite both limit the number of bound parameters.
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        rows.extend(session.exec(select(table).where(col(column).in_(chunk))))
    return rows


def suppression_reasons(session: Session, since: float | None) -> Counter[str]:
    query = select(Suppression.reason, func.count()).group_by(col(Suppression.reason))
    if since is not None:
        query = query.where(col(Suppression.alarm_at) >= since)
    return Counter(dict(session.exec(query).all()))


def _owners(session: Session, cases: Sequence[Case]) -> dict[int, str]:
    devices = {d.id: d.customer_id for d in session.exec(select(Device))}
    return {
        c.id: customer
        for c in cases
        if c.id is not None and (customer := devices.get(c.device_id)) is not None
    }


def _response_times(
    cases: Sequence[Case], first: dict[int | None, float | None], source: str
) -> Distribution:
    return Distribution.of(
        max(0.0, response - c.opened_at)
        for c in cases
        if c.source == source and (response := first[c.id]) is not None
    )


def _awake_response_times(cases: Sequence[Case], messages: Sequence[Outbox]) -> Distribution:
    first: dict[int, Outbox] = {}
    for case_id, sent_at, message in sent_problem_messages(messages):
        known = first.get(case_id)
        if known is None or (known.sent_at or 0.0) > sent_at:
            first[case_id] = message
    return Distribution.of(
        max(0.0, (row.sent_at or 0.0) - c.opened_at - quiet_wait(row, c.opened_at))
        for c in cases
        if c.source == "proactive" and c.id is not None and (row := first.get(c.id)) is not None
    )


def _first_response(case: Case, sent: list[float]) -> float | None:
    times = [*sent, *([case.notified_at] if case.notified_at is not None else [])]
    return min(times, default=None)


def _before_noticed(case: Case, response: float | None) -> bool:
    if response is None:
        return False
    return case.customer_noticed_at is None or response < case.customer_noticed_at


def _suppressed(messages: Sequence[Outbox], events: Sequence[CaseEvent]) -> dict[str, int]:
    reasons: Counter[str] = Counter()
    for event in events:
        if event.kind == "suppressed":
            reasons[str(event.detail.get("reason", "unspecified"))] += 1
    for row in messages:
        if row.status not in FINISHED_STATUSES:
            reasons[f"outbox_{row.status}"] += 1
    return dict(sorted(reasons.items()))


def share_of(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def mean_of(values: Sequence[int]) -> float | None:
    return sum(values) / len(values) if values else None


def nps_of(scores: Sequence[int]) -> float | None:
    if not scores:
        return None
    promoters = sum(1 for s in scores if s >= 9)
    detractors = sum(1 for s in scores if s <= 6)
    return 100.0 * (promoters - detractors) / len(scores)


def _percentile(ordered: Sequence[float], q: float) -> float:
    # Linear interpolation between closest ranks (numpy's default), without numpy.
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
