"""Simulated owners and support team: deterministic by seed, sensible, and end to end."""

from __future__ import annotations

import asyncio
import statistics
from pathlib import Path

import numpy as np
from sqlmodel import Session, select

from devenv.smtp_sink import SmtpSink
from monitor.config import DatabaseSettings, NotifySettings, Settings, SmtpSettings
from monitor.report import build_report
from monitor.store import Case, Outbox, SurveyResponse
from simulators.customers import make_customer
from simulators.fleet import build_fleet
from simulators.owners import Experience, Owner
from simulators.service_run import prepare_database, run_proactive, run_reactive
from simulators.support_team import CLOSES_H, OPENS_H, SupportTeam, add_office_hours
from simulators.weather import DAY, HOUR

START = 1_790_000_000.0  # a Monday, 14:13 UTC
MONDAY = START - START % DAY
EARLY_FIXED = Experience(True, True, 1, False, 0.5)
NOT_CONTACTED = Experience(False, False, 0, False, 3.0)


def owner(seed: int = 1, number: int = 7) -> Owner:
    return Owner(make_customer(np.random.default_rng([seed, number]), number), seed, number)


def csat_over_cases(experience: Experience, cases: int = 200) -> float:
    someone = owner()
    return statistics.mean(someone.answers(experience, k, ask_nps=False).csat for k in range(cases))


def test_same_seed_gives_the_same_owner_behaviour() -> None:
    first, again, other = owner(seed=1), owner(seed=1), owner(seed=2)
    assert first.read_at(START, 5) == again.read_at(START, 5)
    assert first.answers(NOT_CONTACTED, 5, ask_nps=True) == again.answers(
        NOT_CONTACTED, 5, ask_nps=True
    )
    assert [first.read_at(START, k) for k in range(5)] != [
        other.read_at(START, k) for k in range(5)
    ]


def test_owner_contacted_early_and_fixed_is_happier_than_one_never_contacted() -> None:
    assert csat_over_cases(EARLY_FIXED) >= 4.2
    assert csat_over_cases(NOT_CONTACTED) <= 2.8


def test_several_messages_for_one_problem_lower_the_answers() -> None:
    three = Experience(True, True, 3, False, 0.5)
    assert csat_over_cases(three) < csat_over_cases(EARLY_FIXED) - 0.5


def test_false_alarm_is_mildly_worse_than_an_early_fix_and_better_than_no_contact() -> None:
    false_alarm = Experience(True, False, 1, True, 0.5)
    assert csat_over_cases(NOT_CONTACTED) < csat_over_cases(false_alarm)
    assert csat_over_cases(false_alarm) < csat_over_cases(EARLY_FIXED)


def test_message_sent_at_night_is_read_after_the_owner_wakes() -> None:
    someone = owner()
    offset = someone.customer.site.utc_offset_h
    three_am = START - (START + offset * HOUR) % DAY + 3 * HOUR - offset * HOUR
    for key in range(20):
        read = someone.read_at(three_am, key)
        assert read >= three_am + 4 * HOUR
        assert someone.local_hour(read) >= 7.0 or read - three_am > DAY / 2


def test_support_calls_back_in_office_hours_only() -> None:
    team = SupportTeam(seed=3)
    saturday_night = MONDAY - 2 * DAY + 22 * HOUR
    for key in range(20):
        at = team.call_back_at(saturday_night, 1.0, key)
        local = at + HOUR
        assert OPENS_H * HOUR <= local % DAY <= CLOSES_H * HOUR
        assert int((local // DAY + 3) % 7) < 5
    friday_five_pm = MONDAY - 3 * DAY + 17 * HOUR
    assert add_office_hours(friday_five_pm, 2.0, 0.0) == MONDAY + 9 * HOUR


def test_short_service_run_end_to_end(tmp_path: Path) -> None:
    fleet = build_fleet(11, 16, 14, step=300.0, start=START, fault_share=0.5)
    failing = {d.device_id for d in fleet.devices for f in d.faults if f.failure < fleet.end}
    with SmtpSink() as smtp:
        settings = Settings(
            database=DatabaseSettings(url=f"sqlite:///{tmp_path}/proactive.db"),
            notify=NotifySettings(smtp=SmtpSettings(port=smtp.port)),
        )
        proactive = prepare_database(fleet, settings.database.url, tmp_path)
        loop = asyncio.run(run_proactive(fleet, proactive, settings, linger_days=10))
        emails = len(smtp.messages)
    reactive = prepare_database(fleet, f"sqlite:///{tmp_path}/reactive.db", tmp_path)
    run_reactive(fleet, reactive, linger_days=10)

    with Session(proactive) as session:
        cases = list(session.exec(select(Case)))
        sent = [r for r in session.exec(select(Outbox)) if r.status == "sent"]
        answers = list(session.exec(select(SurveyResponse)))
    assert emails == len(sent) > 0
    # Every failing device was either told in time, or its owner phoned in.
    for device_id in failing:
        mine = [c for c in cases if c.device_id == device_id]
        assert mine, f"{device_id} failed and nobody opened a case"
    assert answers
    assert all(c.status in ("closed", "false_alarm") for c in cases if c.device_id in failing)
    assert set(loop.repaired_at) >= failing - {c.device_id for c in cases if c.status == "open"}

    with_monitor, without = build_report(proactive), build_report(reactive)
    assert without.problems == len(failing)
    assert without.proactive_share == 0.0
    assert with_monitor.proactive_share is not None
    assert with_monitor.proactive_share > 0.0
    assert without.frt_reactive.p50 is not None
    assert without.frt_reactive.p50 >= HOUR
    assert with_monitor.frt_awake.maximum is not None
    assert with_monitor.frt_awake.maximum < 60.0
    # Owners who keep their nights quiet are told when they wake, not at 3 a.m.
    assert with_monitor.frt.maximum is not None
    assert with_monitor.frt.maximum >= with_monitor.frt_awake.maximum


def test_owners_leave_more_often_after_a_bad_experience() -> None:
    someone = owner()
    after_bad = sum(someone.leaves(NOT_CONTACTED, 1, k) for k in range(400))
    after_good = sum(someone.leaves(EARLY_FIXED, 5, k) for k in range(400))
    assert after_bad > 5 * max(after_good, 1)


def test_reactive_baseline_is_the_same_for_the_same_seed(tmp_path: Path) -> None:
    fleet = build_fleet(4, 24, 30, step=3600.0, start=START, fault_share=0.5)
    reports = []
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        engine = prepare_database(fleet, f"sqlite:///{tmp_path}/{name}/r.db", tmp_path / name)
        run_reactive(fleet, engine)
        reports.append(build_report(engine))
    assert reports[0] == reports[1]
    assert reports[0].problems > 0
    assert reports[0].csat is not None
    assert reports[0].csat < 0.5
