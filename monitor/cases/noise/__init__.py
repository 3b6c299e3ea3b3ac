"""Noise control, composed in one place: the stages between the rules and the case opener.

Like Alertmanager's notify pipeline, each stage does one thing and the order is written once,
in :func:`build_stages`. An alarm that a stage suppresses goes no further; the suppression is
written to the ``suppression`` table in the batch's transaction and, once committed, counted
in ``monitor_suppressed_total{reason}``.

1. ``duplicate``   — the device already has an open case for the problem.
2. ``inhibited``   — the device is offline or silent: its metric alarms are explained.
3. ``site_down``   — so many devices of its site are offline that the site is down.
4. ``silenced``    — a silence or maintenance window covers the device, model, site, customer.
5. ``flapping``    — the device and problem keep opening and ending cases.
6. ``fleet_incident`` — many devices of the model deviate together: one fleet incident.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlmodel import Session

from monitor.cases.noise.base import BatchContext, NoiseStage, Suppressed, Verdict
from monitor.cases.noise.dedup import Dedup
from monitor.cases.noise.flapping import Flapping
from monitor.cases.noise.fleet import FleetIncidents, FleetTracker
from monitor.cases.noise.inhibition import InhibitOffline, InhibitSiteDown
from monitor.cases.noise.silences import Silences, is_active, matching_silences
from monitor.config import NoiseSettings
from monitor.detect.base import SignalSet
from monitor.metrics import SUPPRESSED
from monitor.store.models import Suppression
from rules.engine import Alarm, RuleEngine

__all__ = [
    "NoiseControl",
    "Suppressed",
    "Verdict",
    "build_stages",
    "count_suppressed",
    "is_active",
    "matching_silences",
]


def build_stages(settings: NoiseSettings, tracker: FleetTracker) -> list[NoiseStage]:
    """The noise pipeline, in order: the one place to add, remove or reorder a stage."""
    return [
        Dedup(),
        InhibitOffline(
            settings.inhibiting_problems, settings.offline_statuses, settings.inhibit_signal
        ),
        InhibitSiteDown(
            settings.inhibiting_problems,
            settings.offline_statuses,
            settings.site_down_share,
            settings.site_down_min_devices,
        ),
        Silences(),
        Flapping(settings.flap_window_hours * 3600, settings.flap_max_cases),
        FleetIncidents(
            tracker,
            share=settings.fleet_share,
            min_devices=settings.fleet_min_devices,
            window_seconds=settings.fleet_window_minutes * 60,
            active_seconds=settings.fleet_active_hours * 3600,
            onset_seconds=settings.fleet_onset_hours * 3600,
        ),
    ]


class NoiseControl:
    """Runs alarms through the stages; holds the only in-memory state (the fleet tracker)."""

    def __init__(
        self, settings: NoiseSettings, rules: RuleEngine, clock: Callable[[], float] = time.time
    ) -> None:
        self._clock = clock
        self.rules = rules
        self.tracker = FleetTracker()
        self.stages = build_stages(settings, self.tracker)

    def observe(self, signals: list[SignalSet]) -> None:
        """Fold a batch's signals into the fleet picture (in memory; part of compute, after
        the rules have evaluated the same batch)."""
        self.tracker.observe(signals, self.rules)

    def run(
        self, session: Session, alarms: list[Alarm], signals: list[SignalSet]
    ) -> tuple[list[Alarm], list[Suppressed]]:
        """Alarms that may open cases, and those suppressed (already logged in ``session``)."""
        ctx = BatchContext(session, alarms, signals, self._clock())
        passed: list[Alarm] = []
        suppressed: list[Suppressed] = []
        for alarm in alarms:
            verdict = None
            # An escalation raises the severity of a case already open: nothing to suppress.
            if "open_case" in alarm.actions and not alarm.escalation:
                verdict = next((v for s in self.stages if (v := s.judge(ctx, alarm))), None)
            if verdict is None:
                passed.append(alarm)
                ctx.passed.add((alarm.device_id, alarm.problem))
                continue
            suppressed.append(Suppressed(alarm, verdict))
            session.add(
                Suppression(
                    at_wall=ctx.now,
                    alarm_at=alarm.at,
                    device_id=alarm.device_id,
                    problem=alarm.problem,
                    rule=alarm.rule,
                    reason=verdict.reason,
                    detail=verdict.detail,
                )
            )
        return passed, suppressed


def count_suppressed(suppressed: list[Suppressed]) -> None:
    """Count committed suppressions (called after the commit, so a retry counts once)."""
    for item in suppressed:
        SUPPRESSED.labels(reason=item.verdict.reason).inc()
