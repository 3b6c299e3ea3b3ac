"""Fleet incidents: when many devices of one model deviate together (a firmware roll-out, a
heat wave), their alarms become one incident for engineering instead of a customer case each.

"Deviating" is read from the signals before any rule's duration has passed: a device counts
as soon as its latest message meets a rule's condition. So by the time the first device's
alarm fires, its peers that started deviating at the same time are already counted, and no
customer hears about a fleet-wide event because their device happened to fire first.
A device that already has an open case for the problem does not count: its own fault explains
its deviation, and a few such devices are no fleet-wide event that could hide the next one.
"""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from monitor.cases.noise.base import BatchContext, Verdict
from monitor.detect.base import SignalSet
from monitor.store import Case
from monitor.store.models import OPEN_CASE_STATUSES, FleetIncident
from rules.engine import Alarm, RuleEngine


class FleetTracker:
    """Per model: when each device last reported, and since when it meets each problem's rule."""

    def __init__(self) -> None:
        self.model_of: dict[str, str] = {}
        self.last_seen: dict[str, dict[str, float]] = {}
        self.deviating: dict[tuple[str, str], dict[str, tuple[float, float]]] = {}
        """Per (model, problem): each deviating device's (since, latest) event times."""

    def observe(self, batch: list[SignalSet], rules: RuleEngine) -> None:
        """Fold in a batch the rule engine has just evaluated (it knows what holds, with
        each device's attributes, thresholds and schedules)."""
        by_problem = _rules_by_problem(rules)
        for signals in batch:
            model = signals.model or signals.peers or self.model_of.get(signals.device_id, "")
            self.model_of[signals.device_id] = model
            self.last_seen.setdefault(model, {})[signals.device_id] = signals.ts
            # A device deviates in a problem when any of that problem's rules holds: several
            # rules share one problem ("degradation").
            for problem, names in by_problem.items():
                held = any(rules.holding(signals.device_id, name) for name in names)
                devices = self.deviating.setdefault((model, problem), {})
                if held:
                    since, _ = devices.get(signals.device_id, (signals.ts, 0.0))
                    devices[signals.device_id] = (since, signals.ts)
                else:
                    devices.pop(signals.device_id, None)

    def count(
        self,
        model: str,
        problem: str,
        at: float,
        window: float,
        *,
        began: float | None = None,
        onset: float = float("inf"),
        explained: frozenset[str] = frozenset(),
    ) -> int:
        """Devices of ``model`` deviating in ``problem`` at ``at`` (latest message within
        ``window``) that began to within ``onset`` seconds of ``began``, other than the
        ``explained`` ones."""
        seen = self.deviating.get((model, problem), {})
        return sum(
            1
            for device_id, (since, ts) in seen.items()
            if ts >= at - window
            and (began is None or abs(since - began) <= onset)
            and device_id not in explained
        )

    def deviating_devices(self, model: str, problem: str) -> list[str]:
        return list(self.deviating.get((model, problem), {}))

    def began(self, model: str, problem: str, device_id: str) -> float | None:
        """When ``device_id`` began to deviate in ``problem`` (None if it does not)."""
        found = self.deviating.get((model, problem), {}).get(device_id)
        return found[0] if found else None

    def active(self, model: str, at: float, window: float) -> int:
        return sum(1 for ts in self.last_seen.get(model, {}).values() if ts >= at - window)


def _rules_by_problem(rules: RuleEngine) -> dict[str, list[str]]:
    by_problem: dict[str, list[str]] = {}
    for rule in rules.rules:
        by_problem.setdefault(rule.problem, []).append(rule.name)
    return by_problem


class FleetIncidents:
    name = "fleet_incident"

    def __init__(
        self,
        tracker: FleetTracker,
        *,
        share: float,
        min_devices: int,
        window_seconds: float,
        active_seconds: float,
        onset_seconds: float = float("inf"),
    ) -> None:
        self._tracker = tracker
        self._share = share
        self._min = min_devices
        self._window = window_seconds
        self._active = active_seconds
        self._onset = onset_seconds

    def judge(self, ctx: BatchContext, alarm: Alarm) -> Verdict | None:
        device = ctx.device(alarm.device_id)
        model = self._tracker.model_of.get(alarm.device_id) or (device.model if device else "")
        if not model:
            return None
        together = self._tracker.count(
            model,
            alarm.problem,
            alarm.at,
            self._window,
            began=self._tracker.began(model, alarm.problem, alarm.device_id),
            onset=self._onset,
            explained=_with_open_case(
                ctx, alarm.problem, self._tracker.deviating_devices(model, alarm.problem)
            ),
        )
        active = max(self._tracker.active(model, alarm.at, self._active), together)
        if together < self._min or together < self._share * active:
            return None
        incident, opened = self._open_or_join(ctx, model, alarm, active)
        detail = {"incident_id": incident.id, "deviating": together, "active": active}
        # Only the alarm that opened the incident says so: it is what engineering is told of.
        return Verdict(self.name, {**detail, "opened": True} if opened else detail)

    def _open_or_join(
        self, ctx: BatchContext, model: str, alarm: Alarm, active: int
    ) -> tuple[FleetIncident, bool]:
        """The open incident of the model and problem, and whether this alarm opened it."""
        incident = _open_incident(ctx, model, alarm.problem)
        opened = incident is None
        if incident is None:
            incident = FleetIncident(
                model=model,
                problem=alarm.problem,
                opened_at=alarm.at,
                created_wall=ctx.now,
                active_devices=active,
            )
            try:
                with ctx.session.begin_nested():
                    ctx.session.add(incident)
                    ctx.session.flush()
            except IntegrityError:
                # Another monitor process opened it a moment ago: join that one.
                incident = _open_incident(ctx, model, alarm.problem)
                assert incident is not None
                opened = False
        if alarm.device_id not in incident.devices:
            incident.devices = [*incident.devices, alarm.device_id]
        if alarm.rule not in incident.rules:
            incident.rules = [*incident.rules, alarm.rule]
        ctx.session.add(incident)
        ctx.session.flush()
        return incident, opened


def _with_open_case(ctx: BatchContext, problem: str, devices: list[str]) -> frozenset[str]:
    """Those of ``devices`` with an open case for ``problem``: their deviation is their own
    fault's."""
    if not devices:
        return frozenset()
    return frozenset(
        ctx.session.exec(
            select(Case.device_id).where(
                Case.problem == problem,
                col(Case.status).in_(OPEN_CASE_STATUSES),
                col(Case.device_id).in_(devices),
            )
        )
    )


def _open_incident(ctx: BatchContext, model: str, problem: str) -> FleetIncident | None:
    return ctx.session.exec(
        select(FleetIncident).where(
            FleetIncident.model == model,
            FleetIncident.problem == problem,
            col(FleetIncident.status).in_(("open", "acknowledged")),
        )
    ).first()
