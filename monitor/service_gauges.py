"""The ``monitor_service_*`` Prometheus gauges: the service report's headline figures.

The daemon refreshes them every minute for the life of the process, so they are computed the
cheap way: the database groups each case's messages, and only the few columns the figures
need are read, never whole rows (a case's evidence alone is a chart of every metric). The
figures are the same as :func:`monitor.report.build_report`'s.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Subquery, distinct, func, select, true
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session, col

from monitor.metrics import SERVICE_FIGURES, SERVICE_QUANTILES, SERVICE_SUPPRESSED
from monitor.notify.channels import SUPPORT_CHANNELS
from monitor.report import (
    CUSTOMER_LEFT,
    FINISHED_STATUSES,
    QUANTILES,
    SURVEY_PURPOSES,
    Distribution,
    ServiceReport,
    mean_of,
    nps_of,
    share_of,
    suppression_reasons,
)
from monitor.store import Case, CaseEvent, Customer, Device, Outbox, SurveyResponse


@dataclass(frozen=True)
class ServiceFigures:
    """The report's figures that are exported as gauges."""

    figures: dict[str, float | None]
    """By gauge name (``monitor_service_<name>``); ``None`` where there is nothing to
    compute one from."""
    lead_time: Distribution
    frt: Distribution
    suppressed: dict[str, int]

    @classmethod
    def of(cls, report: ServiceReport) -> ServiceFigures:
        """The same figures taken from a full report."""
        figures: dict[str, float | None] = {
            "problems": report.problems,
            "proactive_share": report.proactive_share,
            "art_seconds": report.art.mean,
            "resolution_rate": report.resolution_rate,
            "csat": report.csat,
            "ces": report.ces,
            "nps": report.nps,
            "helpful_share": report.helpful_share,
            "retention": report.retention,
            "messages_per_problem": report.messages_per_problem,
        }
        return cls(figures, report.lead_time, report.frt, report.suppressed)


def refresh_service_metrics(engine: Engine, since: float | None = None) -> ServiceFigures:
    """Compute the figures over the cases opened at or after ``since`` and publish them."""
    with Session(engine) as session:
        figures = service_figures(session, since)
    for name, value in figures.figures.items():
        SERVICE_FIGURES[name].set(math.nan if value is None else value)
    for name, dist in (("lead_time_seconds", figures.lead_time), ("frt_seconds", figures.frt)):
        for quantile, value in zip(QUANTILES, (dist.p10, dist.p50, dist.p90), strict=True):
            gauge = SERVICE_QUANTILES[name].labels(quantile=str(quantile))
            gauge.set(math.nan if value is None else value)
    SERVICE_SUPPRESSED.clear()
    for reason, count in figures.suppressed.items():
        SERVICE_SUPPRESSED.labels(reason=reason).set(count)
    return figures


def service_figures(session: Session, since: float | None = None) -> ServiceFigures:
    """The gauges' figures over the cases opened at or after ``since``."""
    window = true() if since is None else col(Case.opened_at) >= since
    connection = session.connection()
    figures, lead_time, frt = _case_figures(connection, window)
    scores = _scores(connection, window)
    customers = connection.execute(select(func.count()).select_from(Customer)).scalar_one()
    left = connection.execute(
        select(func.count(distinct(col(Device.customer_id))))
        .select_from(CaseEvent)
        .join(Case, col(Case.id) == col(CaseEvent.case_id))
        .join(Device, col(Device.id) == col(Case.device_id))
        .where(col(CaseEvent.kind) == CUSTOMER_LEFT, col(Device.customer_id).is_not(None), window)
    ).scalar_one()
    figures |= {
        "csat": share_of(sum(1 for s in scores["csat"] if s >= 4), len(scores["csat"])),
        "ces": mean_of(scores["ces"]),
        "nps": nps_of(scores["nps"]),
        "helpful_share": share_of(sum(1 for s in scores["helpful"] if s), len(scores["helpful"])),
        "retention": share_of(customers - left, customers),
    }
    reasons = _suppressed(connection, window) + suppression_reasons(session, since)
    return ServiceFigures(figures, lead_time, frt, dict(sorted(reasons.items())))


def _case_figures(
    connection: Connection, window: ColumnElement[bool]
) -> tuple[dict[str, float | None], Distribution, Distribution]:
    """The figures over cases: a few columns of each, with its messages already grouped."""
    sent = _problem_messages()
    rows = connection.execute(
        select(
            col(Case.status),
            col(Case.source),
            col(Case.opened_at),
            col(Case.predicted_failure_at),
            col(Case.customer_noticed_at),
            col(Case.notified_at),
            col(Case.resolved_at),
            sent.c.first_sent,
            sent.c.purposes,
        )
        .outerjoin(sent, sent.c.case_id == col(Case.id))
        .where(window)
    )
    problems = contacted = 0
    lead_time: list[float] = []
    frt: list[float] = []
    art: list[float] = []
    counts: list[int] = []
    for status, source, opened, predicted, noticed, notified, resolved, first_sent, n in rows:
        first = min((t for t in (first_sent, notified) if t is not None), default=None)
        if source == "proactive" and first is not None:
            frt.append(max(0.0, first - opened))
        if status == "false_alarm":
            continue
        problems += 1
        contacted += first is not None and (noticed is None or first < noticed)
        if source == "proactive" and predicted is not None:
            lead_time.append(predicted - opened)
        counts.append(n or 0)
        if resolved is not None:
            art.append(resolved - opened)
    figures: dict[str, float | None] = {
        "problems": problems,
        "proactive_share": share_of(contacted, problems),
        "art_seconds": Distribution.of(art).mean,
        "resolution_rate": share_of(len(art), problems),
        "messages_per_problem": mean_of(counts),
    }
    return figures, Distribution.of(lead_time), Distribution.of(frt)


def _problem_messages() -> Subquery:
    """Per case: when the customer was first told about its problem, and by how many
    messages (one per purpose), as :func:`monitor.report.sent_messages` counts them."""
    return (
        select(
            col(Outbox.case_id).label("case_id"),
            func.min(col(Outbox.sent_at)).label("first_sent"),
            func.count(distinct(col(Outbox.purpose))).label("purposes"),
        )
        .where(
            col(Outbox.case_id).is_not(None),
            col(Outbox.status) == "sent",
            col(Outbox.sent_at).is_not(None),
            col(Outbox.channel).not_in(SUPPORT_CHANNELS),
            # Not a survey: startswith, case-sensitive on every database (LIKE is not).
            *(func.substr(col(Outbox.purpose), 1, len(p)) != p for p in SURVEY_PURPOSES),
        )
        .group_by(col(Outbox.case_id))
        .subquery()
    )


def _scores(connection: Connection, window: ColumnElement[bool]) -> dict[str, list[int]]:
    """Survey answers by question."""
    scores: dict[str, list[int]] = defaultdict(list)
    for question, score, answers in connection.execute(
        select(col(SurveyResponse.question), col(SurveyResponse.score), func.count())
        .join(Case, col(Case.id) == col(SurveyResponse.case_id))
        .where(window)
        .group_by(col(SurveyResponse.question), col(SurveyResponse.score))
    ):
        scores[question].extend([score] * answers)
    return scores


def _suppressed(connection: Connection, window: ColumnElement[bool]) -> Counter[str]:
    """Suppressed case events by reason and unsent outbox rows by status."""
    reasons: Counter[str] = Counter()
    for (detail,) in connection.execute(
        select(col(CaseEvent.detail))
        .join(Case, col(Case.id) == col(CaseEvent.case_id))
        .where(col(CaseEvent.kind) == "suppressed", window)
    ):
        reasons[str((detail or {}).get("reason", "unspecified"))] += 1
    for status, rows in connection.execute(
        select(col(Outbox.status), func.count())
        .join(Case, col(Case.id) == col(Outbox.case_id))
        .where(col(Outbox.status).not_in(FINISHED_STATUSES), window)
        .group_by(col(Outbox.status))
    ):
        reasons[f"outbox_{status}"] += rows
    return reasons
