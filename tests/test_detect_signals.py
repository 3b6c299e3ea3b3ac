"""Trend, forecast, change point, persistence, relationships, silence, cold start, evidence
and "accept as normal", each on plain data."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.config import DetectSettings
from monitor.detect import DetectStage, SignalSet
from monitor.detect.device_state import DeviceState
from monitor.detect.history import BucketHistory
from monitor.detect.multivariate import Relationships
from monitor.detect.peers import MIN_SPREAD, FleetPeers
from monitor.ingest import Telemetry

STEP = 300.0
DAY = 86400.0
HOUR = 3600.0


def daily(ts: float) -> float:
    return 50.0 + 10.0 * math.sin(2 * math.pi * ts / DAY)


def feed(
    stage: DetectStage,
    device: str,
    seconds: float,
    metrics: Callable[[float, random.Random], dict[str, float]],
    rng: random.Random,
    t0: float = 0.0,
    step: float = STEP,
    model: str = "M",
) -> list[SignalSet]:
    out = []
    for i in range(int(seconds / step)):
        ts = t0 + i * step
        out.extend(stage.run([Telemetry(device, ts, metrics(ts, rng), model=model)]))
    return out


def healthy(ts: float, rng: random.Random) -> dict[str, float]:
    return {"m": daily(ts) + rng.gauss(0, 1.0)}


def ramp_from(start: float, per_hour: float) -> Callable[[float, random.Random], dict[str, float]]:
    def metrics(ts: float, rng: random.Random) -> dict[str, float]:
        return {"m": daily(ts) + rng.gauss(0, 1.0) + per_hour * max(0.0, (ts - start) / HOUR)}

    return metrics


def test_slow_ramp_gives_a_rising_trend_and_a_failure_forecast_with_a_band() -> None:
    stage = DetectStage(DetectSettings())
    rng = random.Random(1)
    feed(stage, "d", 5 * DAY, healthy, rng)
    out = feed(stage, "d", 2 * DAY, ramp_from(5 * DAY, 0.08), rng, t0=5 * DAY)
    last = out[-1]
    assert (last.value("trend") or 0.0) > 1.0
    days = last.value("days_to_failure")
    low, high = last.value("days_to_failure_low"), last.value("days_to_failure_high")
    assert days is not None
    assert low is not None
    assert high is not None
    assert 0.0 < low <= days <= high
    assert last.predicted_failure_at is not None
    assert last.predicted_failure_at > last.ts


def test_healthy_device_has_no_trend_forecast_or_accumulated_change() -> None:
    stage = DetectStage(DetectSettings())
    out = feed(stage, "d", 8 * DAY, healthy, random.Random(2))
    late = [s for s in out if s.ts > 5 * DAY]
    assert all(s.value("days_to_failure") is None for s in late)
    assert max(s.value("change") or 0.0 for s in late) < 10.0
    assert max(abs(s.value("trend") or 0.0) for s in late) < 1.0


def test_step_accumulates_a_change_point_and_sustained_deviation() -> None:
    stage = DetectStage(DetectSettings())
    rng = random.Random(3)
    feed(stage, "d", 4 * DAY, healthy, rng)

    def stepped(ts: float, r: random.Random) -> dict[str, float]:
        return {"m": daily(ts) + 6.0 + r.gauss(0, 1.0)}

    out = feed(stage, "d", DAY, stepped, rng, t0=4 * DAY)
    assert (out[-1].value("change") or 0.0) > 30.0
    assert (out[-1].value("sustained") or 0.0) > 3.0


def test_short_spike_does_not_count_as_sustained() -> None:
    stage = DetectStage(DetectSettings())
    rng = random.Random(4)
    feed(stage, "d", 4 * DAY, healthy, rng)

    def spiky(ts: float, r: random.Random) -> dict[str, float]:
        spike = 30.0 if 4 * DAY + 6 * HOUR <= ts < 4 * DAY + 7 * HOUR else 0.0
        return {"m": daily(ts) + spike + r.gauss(0, 1.0)}

    out = feed(stage, "d", DAY, spiky, rng, t0=4 * DAY)
    assert max(s.value("sustained") or 0.0 for s in out) < 1.0


def test_idle_day_does_not_poison_the_baseline() -> None:
    stage = DetectStage(DetectSettings())
    rng = random.Random(5)

    def pump(ts: float, r: random.Random) -> dict[str, float]:
        idle = 4 * DAY <= ts < 5 * DAY
        running = not idle and (ts % (6 * HOUR)) < 3 * HOUR
        return {
            "flow": (40.0 + r.gauss(0, 1)) if running else 0.0,
            "temp": 30.0 + (10.0 if running else 0.0) + r.gauss(0, 0.3),
        }

    out = feed(stage, "p", 7 * DAY, pump, rng)
    after = [s for s in out if s.ts > 5.5 * DAY]
    assert max(s.deviation for s in after) < 4.0
    assert max(s.value("sustained") or 0.0 for s in after) < 3.0


def _pair(decoupled_from: float) -> Callable[[float, random.Random], dict[str, float]]:
    def metrics(ts: float, r: random.Random) -> dict[str, float]:
        load = r.gauss(0, 1.0)
        # Healthy: current follows flow. Broken: current rises as flow falls, each metric
        # still within its own usual range.
        sign = -1.0 if ts >= decoupled_from else 1.0
        return {"flow": 40.0 + 3.0 * load, "current": 5.0 + 0.3 * sign * load + r.gauss(0, 0.03)}

    return metrics


def test_broken_relationship_between_metrics_is_an_anomaly() -> None:
    stage = DetectStage(DetectSettings())
    rng = random.Random(6)
    out = feed(stage, "d", 6 * DAY, _pair(5 * DAY), rng)
    before = [s.value("anomaly") for s in out if 4 * DAY < s.ts < 5 * DAY]
    after = [s.value("anomaly") for s in out if s.ts > 5.5 * DAY]
    assert all(v is not None for v in before + after)
    assert max(v or 0.0 for v in before) < 2.0
    assert min(v or 0.0 for v in after) > 4.0


def test_silence_is_measured_in_the_devices_own_intervals() -> None:
    stage = DetectStage(DetectSettings())
    rng = random.Random(7)
    feed(stage, "fast", 2 * HOUR, healthy, rng, step=60.0)
    feed(stage, "slow", 2 * HOUR, healthy, rng, step=600.0)
    now = 2 * HOUR + 15 * 60.0
    silent = {s.device_id: s.extra["silence"] for s in stage.silent(now)}
    assert "fast" in silent
    assert 10.0 < silent["fast"] < 30.0
    assert "slow" not in silent


def test_new_device_starts_from_its_models_fleet_prior() -> None:
    stage = DetectStage(DetectSettings())
    rng = random.Random(8)
    feed(stage, "old", 5 * DAY, healthy, rng)
    out = feed(stage, "new", DAY, lambda ts, r: {"m": daily(ts) + 15 + r.gauss(0, 1)}, rng, 5 * DAY)
    # Judged from its first hours, long before its own 72 hours of learning end; a device
    # with no fleet to learn from stays silent meanwhile.
    assert any(s.deviation > 3.0 for s in out[:36])
    alone = DetectStage(DetectSettings())
    out = feed(alone, "new", DAY, lambda ts, r: {"m": daily(ts) + 15 + r.gauss(0, 1)}, rng, 5 * DAY)
    assert max(s.deviation for s in out) == 0.0


def test_accept_as_normal_recentres_and_clears_held_state() -> None:
    stage = DetectStage(DetectSettings())
    rng = random.Random(9)
    feed(stage, "d", 4 * DAY, healthy, rng)
    shifted = ramp_from(0.0, 0.0)

    def step(ts: float, r: random.Random) -> dict[str, float]:
        return {"m": shifted(ts, r)["m"] + 8.0}

    out = feed(stage, "d", DAY, step, rng, t0=4 * DAY)
    assert out[-1].deviation > 4.0
    stage.accept_as_normal("d")
    out = feed(stage, "d", DAY, step, rng, t0=5 * DAY)
    assert max(s.deviation for s in out) < 3.0
    assert max(s.value("sustained") or 0.0 for s in out) < 2.0


def test_evidence_series_has_hourly_points_with_a_band_around_the_expected_value() -> None:
    stage = DetectStage(DetectSettings())
    feed(stage, "d", 6 * DAY, healthy, random.Random(10))
    series = stage.evidence_series("d")["m"]
    assert 48 <= len(series) <= 72
    for ts, observed, expected, low, high in series:
        assert ts % HOUR == 0
        assert low < expected < high
        assert abs(observed - expected) < high - expected
    assert stage.evidence_series("nobody") == {}


def test_one_default_works_on_a_one_hertz_rig() -> None:
    stage = DetectStage(DetectSettings())
    rng = random.Random(11)
    feed(stage, "rig", 1000.0, lambda ts, r: {"m": 5.0 + r.gauss(0, 0.1)}, rng, step=1.0)
    out = feed(stage, "rig", 400.0, lambda ts, r: {"m": 6.0 + r.gauss(0, 0.1)}, rng, 1000.0, 1.0)
    flagged = [s.ts for s in out if (s.value("sustained") or 0.0) > 4.0]
    assert flagged
    assert flagged[0] < 1000.0 + 300.0


def test_checkpoint_restores_history_interval_and_relationships() -> None:
    stage = DetectStage(DetectSettings())
    feed(stage, "d", 5 * DAY, _pair(10 * DAY), random.Random(12))
    saved = stage.checkpoint()
    fresh = DetectStage(DetectSettings())
    fresh.restore(saved)
    # Levels are checkpointed to a two-hundredth of the spread: the band is where it was.
    before, after = stage.evidence_series("d"), fresh.evidence_series("d")
    assert before.keys() == after.keys()
    for metric, points in before.items():
        assert len(points) == len(after[metric])
        for (ts, *values), (ts2, *values2) in zip(points, after[metric], strict=True):
            sigma = (values[3] - values[2]) / 6.0  # observed, expected, band low, band high
            assert ts == ts2
            assert all(
                math.isclose(u, v, abs_tol=sigma / 100 + 0.001)
                for u, v in zip(values, values2, strict=True)
            )
    a = stage.run([Telemetry("d", 5 * DAY, {"flow": 41.0, "current": 5.1}, model="M")])[0]
    b = fresh.run([Telemetry("d", 5 * DAY, {"flow": 41.0, "current": 5.1}, model="M")])[0]
    assert a.value("anomaly") is not None
    assert math.isclose(a.value("anomaly") or 0.0, b.value("anomaly") or 0.0, abs_tol=0.05)
    assert len(saved["d"]) < 4096


@settings(max_examples=40, deadline=None)
@given(
    st.floats(-2.0, 2.0),
    st.lists(st.integers(1, 3), min_size=20, max_size=60),
)
def test_history_trend_recovers_a_linear_slope_across_gaps(slope: float, steps: list[int]) -> None:
    history = BucketHistory()
    bucket = 0
    for gap in steps:
        bucket += gap
        history.close(bucket, 0.1 * slope * bucket, 0.1 * slope * bucket)
    assert math.isclose(history.trend, 0.1 * slope, abs_tol=0.02)
    forecast = history.buckets_to(10.0)
    assert forecast is None or all(v >= 0.0 for v in forecast)


def _heat_pump(
    snap_from: float, rng_days: random.Random
) -> Callable[[float, random.Random], dict[str, float]]:
    offsets = [rng_days.uniform(-4.0, 4.0) for _ in range(30)]

    def metrics(ts: float, r: random.Random) -> dict[str, float]:
        outdoor = 5.0 + 4.0 * math.sin(2 * math.pi * ts / DAY) + offsets[int(ts // DAY)]
        if ts >= snap_from:
            outdoor -= 10.0
        return {
            "outdoor_temp_c": outdoor + r.gauss(0, 0.2),
            "cop": 3.0 + 0.06 * outdoor + r.gauss(0, 0.03),
        }

    return metrics


def test_outdoor_temperature_explains_a_cold_snap_but_not_a_fault() -> None:
    stage = DetectStage(DetectSettings())
    rng = random.Random(13)
    out = feed(stage, "hp", 7 * DAY, _heat_pump(5 * DAY, random.Random(1)), rng)
    assert max(s.value("deviation", "cop") or 0.0 for s in out if s.ts > 5 * DAY) < 3.0
    leaking = _heat_pump(5 * DAY, random.Random(1))

    def leak(ts: float, r: random.Random) -> dict[str, float]:
        m = leaking(ts, r)
        return {**m, "cop": m["cop"] - 0.5}

    out = feed(stage, "hp", DAY, leak, rng, t0=7 * DAY)
    assert (out[-1].value("deviation", "cop") or 0.0) > 4.0


def _carnot_cop(outdoor: float) -> float:
    # The simulator's heat pump: weather-compensated supply, a fraction of the Carnot COP;
    # it triples between -5 °C and 18 °C and bends, which no straight line follows.
    supply = min(max(30.0 + 0.6 * (20.0 - outdoor), 28.0), 55.0)
    return 0.45 * (supply + 273.15) / (supply - outdoor + 5.0)


def test_a_curved_weather_dependence_is_learned_and_a_small_leak_still_shows() -> None:
    stage = DetectStage(DetectSettings())
    rng = random.Random(21)
    swings = [random.Random(2).uniform(-6.0, 6.0) for _ in range(30)]

    def heat_pump(leak: float) -> Callable[[float, random.Random], dict[str, float]]:
        def metrics(ts: float, r: random.Random) -> dict[str, float]:
            outdoor = 6.0 + 6.0 * math.sin(2 * math.pi * ts / DAY) + swings[int(ts // DAY)]
            return {
                "outdoor_temp_c": outdoor + r.gauss(0, 0.2),
                "cop": _carnot_cop(outdoor) * (1.0 - leak) + r.gauss(0, 0.05),
            }

        return metrics

    healthy = feed(stage, "hp", 10 * DAY, heat_pump(0.0), rng)
    judged = [abs(s.value("deviation", "cop") or 0.0) for s in healthy if s.ts > 5 * DAY]
    assert max(judged) < 1.5
    # A 6 % loss of COP is a fraction of a day's swing, and several healthy spreads.
    leaking = feed(stage, "hp", DAY, heat_pump(0.06), rng, t0=10 * DAY)
    assert max(s.value("deviation", "cop") or 0.0 for s in leaking) > 4.0


def test_devices_without_a_model_are_compared_with_devices_reporting_the_same_metrics() -> None:
    stage = DetectStage(DetectSettings(min_peers=3))
    rng = random.Random(22)
    # Four chargers whose power the whole fleet moves, and two pumps that report power too:
    # the pumps must not count as the chargers' peers (a file without models).
    for i in range(4):
        feed(
            stage,
            f"ev{i}",
            4 * DAY,
            lambda ts, r: {"power_kw": 7.0 + r.gauss(0, 0.1), "voltage_v": 230.0 + r.gauss(0, 0.5)},
            rng,
            model="",
        )
    groups = {stage._devices[f"ev{i}"].group for i in range(4)}
    assert groups == {"metrics:power_kw,voltage_v"}
    feed(stage, "wp", DAY, lambda ts, r: {"power_kw": 1.0, "flow_lpm": 40.0}, rng, model="")
    assert stage._devices["wp"].group == "metrics:flow_lpm,power_kw"


def test_idle_day_of_a_device_that_always_ran_is_its_own_state_not_a_fault() -> None:
    stage = DetectStage(DetectSettings())
    rng = random.Random(14)

    def heat_pump(ts: float, r: random.Random) -> dict[str, float]:
        idle = 5 * DAY <= ts < 6 * DAY
        return {
            "power_kw": 0.02 if idle else 2.0 + 0.3 * math.sin(ts / 5000.0) + r.gauss(0, 0.05),
            "compressor_temp_c": (15.0 if idle else 60.0) + r.gauss(0, 0.4),
        }

    out = feed(stage, "hp", 7 * DAY, heat_pump, rng)
    assert stage.duty_metric("hp") is None
    assert max(s.deviation for s in out if s.ts >= 5 * DAY) < 4.0


def test_relationship_training_stays_bounded_however_long_a_device_learns() -> None:
    joint = Relationships()
    rng = random.Random(13)
    for _ in range(20_000):
        joint.collect({"flow": rng.gauss(0, 1), "current": rng.gauss(0, 1), "temp": 0.0})
    # Every stride-th vector, packed: a learning device costs kilobytes, not a list per sample.
    assert len(joint.buffer) <= 192 * 3
    assert joint.buffer.itemsize == 4
    assert joint.fit()
    assert joint.score({"flow": 0.0, "current": 0.0, "temp": 0.0}, STEP, 12 * STEP) is not None


def test_a_fleet_wide_shift_in_degrees_cancels_for_tight_and_loose_baselines_alike() -> None:
    # A warm front lifts every charger's connector by 5 °C: 6 spreads for a charger whose
    # baseline is tight (0.8 °C), under 2 for the loose ones (3 °C). In degrees it is the same
    # move for all, and none of them stands out; one charger 5 °C above the others does.
    peers = FleetPeers(min_peers=5)
    scales = {"tight": 0.8, **{f"loose{i}": 3.0 for i in range(5)}}
    adjusted: dict[str, float] = {}
    for ts in (0.0, 300.0):
        for device, scale in scales.items():
            adjusted[device] = peers.adjust("EC", "connector", device, 5.0 / scale, ts, scale=scale)
    assert max(abs(v) for v in adjusted.values()) < 0.5
    drifting = peers.adjust("EC", "connector", "tight", 10.0 / 0.8, 600.0, scale=0.8)
    assert drifting > 5.0


def test_peers_moving_the_other_way_do_not_make_a_device_worse() -> None:
    # A cold snap: five chargers read 4 °C colder than usual, one whose surroundings are
    # explained reads 1 °C warm. Its peers explain nothing of that degree, and must not turn
    # it into five: only a move the peers share is taken off.
    peers = FleetPeers(min_peers=5)
    for ts in (0.0, 300.0):
        for i in range(5):
            peers.adjust("EC", "connector", f"cold{i}", -4.0 + 0.1 * i, ts)
        warm = peers.adjust("EC", "connector", "explained", 1.0, ts)
    assert warm <= 1.0 / MIN_SPREAD
    shared = peers.adjust("EC", "connector", "explained", -5.0, 600.0)
    assert -5.0 < shared < 0.0


def test_a_device_without_operating_states_is_compared_with_its_twins_that_have_them() -> None:
    # Five batteries of one model found an on/off metric in their first day, the sixth did not:
    # its cell temperature is tracked without a state, theirs per state. A warm front lifts
    # all six by 4 °C; the sixth must not stand out for lack of peers in its own key.
    peers = FleetPeers(min_peers=5)
    adjusted = 0.0
    for ts in (0.0, 300.0):
        for i in range(5):
            state = "on" if i % 2 else "off"
            peers.adjust("HB", f"cell_temp|{state}", f"twin{i}", 4.0 + 0.1 * i, ts)
        adjusted = peers.adjust("HB", "cell_temp", "stateless", 4.0, ts)
    assert abs(adjusted) < 0.5
    # The states keep their own peers: three running twins are too few to compare with.
    assert peers.adjust("HB", "cell_temp|on", "twin1", 9.0, 600.0) == 9.0


def test_too_few_of_a_model_in_a_state_are_compared_with_devices_reporting_the_same_metrics() -> (
    None
):
    # Three HB-10 and three HB-13 batteries are charging on a sunny day, all 40 % fuller than
    # usual: too few of either model to compare with, but the six report the same metrics.
    # The sunshine is theirs in common, not a fault of each; one battery 40 % off while the
    # others are not still stands out.
    peers = FleetPeers(min_peers=5)
    kin = "metrics:current_a,soc_pct"
    adjusted: dict[str, float] = {}
    for ts in (0.0, 300.0):
        for i in range(6):
            model = "HB-10" if i < 3 else "HB-13"
            adjusted[f"hb{i}"] = peers.adjust(
                model, "soc_pct|on", f"hb{i}", 40.0 + 0.1 * i, ts, scale=2.0, kin=kin
            )
    assert max(abs(v) for v in adjusted.values()) < 1.0
    # Without the kin (a model on its own), the same move is the device's own.
    assert peers.adjust("HB-10", "soc_pct|on", "hb0", 40.0, 600.0, scale=2.0) == 40.0
    alone = 0.0
    for ts in (900.0, 1200.0):
        for i in range(1, 6):
            model = "HB-10" if i < 3 else "HB-13"
            peers.adjust(model, "soc_pct|on", f"hb{i}", 0.1 * i, ts, scale=2.0, kin=kin)
        alone = peers.adjust("HB-10", "soc_pct|on", "hb0", 40.0, ts, scale=2.0, kin=kin)
    # Calm twins would magnify it (up to 1 / MIN_SPREAD); devices of another model do not.
    assert 20.0 < alone <= 40.0
    assert peers.gain == 1.0


def _swinging(swinging: bool, round_: int) -> float:
    """A deviation 6 spreads off while ``swinging``, else calm, with a little noise."""
    return (6.0 if swinging else 0.0) + 0.3 * math.sin(round_ * 1.7)


def test_a_metric_that_swings_far_on_every_device_must_move_further_to_count() -> None:
    # Six batteries, each some hours of the day 6 spreads off its baseline while the others
    # are calm (its own sunshine and habits): calm peers magnify that, and only the model's
    # typical swing scales it back. A battery off by as much all day still stands out.
    peers = FleetPeers(min_peers=5)
    adjusted: dict[int, list[float]] = {i: [] for i in range(6)}
    for round_ in range(3 * 288):
        for i in range(6):
            swinging = (round_ // 12) % 6 == i or (i == 0 and round_ >= 2 * 288)
            value = peers.adjust("HB", "soc", f"hb{i}", _swinging(swinging, round_), round_ * STEP)
            adjusted[i].append(value)
    assert peers._groups[("HB", "soc")].swing > 1.5

    def habit(day: int) -> float:
        swings = [v for i in range(1, 6) for v in adjusted[i][day * 288 : (day + 1) * 288]]
        return sum(v for v in swings if v > 2.0) / sum(1 for v in swings if v > 2.0)

    assert habit(2) < 0.7 * habit(0)
    assert min(adjusted[0][-144:]) > 4.0


def test_failing_devices_do_not_hide_themselves_by_raising_the_typical_swing() -> None:
    # Three heat pumps of nine leak: their COP sits 4 spreads low for days. The other six are
    # calm. What is typical of the model is what its median device does, so the leaks do not
    # fade as the days pass.
    peers = FleetPeers(min_peers=5)
    rng = random.Random(32)
    first = last = 0.0
    for round_ in range(3 * 288):
        for i in range(9):
            leaking = i < 3
            value = peers.adjust(
                "HP", "cop", f"hp{i}", (-4.0 if leaking else 0.0) + rng.gauss(0, 0.3), round_ * STEP
            )
            if i == 0:
                first, last = (value, value) if round_ == 10 else (first, value)
    assert first < -4.0
    assert last < 0.9 * first + 0.5


def test_the_typical_swing_survives_a_checkpoint_and_older_ones_load() -> None:
    peers = FleetPeers(min_peers=5)
    for round_ in range(2 * 288):
        for i in range(6):
            swinging = (round_ // 12) % 6 == i
            peers.adjust("HB", "soc", f"hb{i}", _swinging(swinging, round_), round_ * STEP)
    state = json.loads(json.dumps(peers.to_state()))
    assert min(state["groups"][0][3].values()) > 1.2  # a swing that scales
    restored = FleetPeers(min_peers=5)
    restored.load_state(state)
    # The medians are a round old (restoring computes them afresh): compare after a round.
    for round_ in (576, 577):
        for i in range(6):
            ts, value = round_ * STEP, 6.0 - i
            went_on = restored.adjust("HB", "soc", f"hb{i}", value, ts)
            carried_on = peers.adjust("HB", "soc", f"hb{i}", value, ts)
            if round_ == 577:
                assert went_on == pytest.approx(carried_on, rel=1e-3)
    # Before each device had its own, a group kept one swing: every device starts from it.
    (group,) = state["groups"]
    adjusted = {}
    for swing in (1.0, 3.0):
        older = FleetPeers(min_peers=5)
        older.load_state({"groups": [[*group[:3], swing]]})
        adjusted[swing] = older.adjust("HB", "soc", "hb0", 6.0, 578 * STEP)
    assert adjusted[3.0] == pytest.approx(adjusted[1.0] / 3.0, rel=1e-3)


def test_a_models_typical_swing_needs_the_word_of_enough_devices() -> None:
    # Of nine heat pumps, two have no operating states (their "cop" has no "|on"), and both
    # leak. The seven with states count among their peers but swing in their own keys: the two
    # alone must not make a 6-spread move typical of the model.
    peers = FleetPeers(min_peers=5)
    rng = random.Random(33)
    value = 0.0
    for round_ in range(3 * 288):
        ts = round_ * STEP
        for i in range(7):
            peers.adjust("HP", "cop|on", f"twin{i}", rng.gauss(0, 0.3), ts)
        for i in range(2):
            value = peers.adjust("HP", "cop", f"stateless{i}", -6.0 + rng.gauss(0, 0.3), ts)
    assert value < -6.0


def _charger(
    resistance: float, swings: list[float]
) -> Callable[[float, random.Random], dict[str, float]]:
    """A charger charging every evening for one to three hours at 70 % or full current; its
    connector heats with the current squared over a twenty-minute thermal lag, on top of
    an outdoor temperature (not reported) that swings by day and by weather front."""
    heat = [0.0]

    def metrics(ts: float, r: random.Random) -> dict[str, float]:
        day, hour = int(ts // DAY), (ts % DAY) / HOUR
        plan = random.Random(day)
        length, level = plan.uniform(1.0, 3.0), plan.choice((0.7, 1.0))
        load = level if 18.0 <= hour < 18.0 + length else 0.0
        heat[0] += (1.0 - math.exp(-STEP / 1200.0)) * (load * load - heat[0])
        outdoor = 8.0 + 5.0 * math.sin(2 * math.pi * (hour - 9.0) / 24.0) + swings[day]
        return {
            "power_kw": max(0.0, 11.0 * load + r.gauss(0, 0.02)),
            "connector_temp_c": outdoor + 2.0 + (16.0 + resistance) * heat[0] + r.gauss(0, 0.3),
        }

    return metrics


_SWINGS = [random.Random(3).uniform(-6.0, 6.0) for _ in range(30)]
"""The weather fronts of the charger tests: degrees added to the outdoor temperature, by day."""


def _healthy_charger(stage: DetectStage, days: float, rng: random.Random) -> list[SignalSet]:
    # From noon: the first half day, from which the on/off metric is decided, has a car.
    return feed(stage, "ev", days * DAY, _charger(0.0, _SWINGS), rng, t0=DAY / 2)


def test_a_running_metric_is_explained_by_the_load_and_the_surroundings_before_the_run() -> None:
    stage = DetectStage(DetectSettings())
    rng = random.Random(5)
    running = "connector_temp_c (on)"
    healthy = _healthy_charger(stage, 14, rng)
    judged = [s.value("signed_deviation", running) for s in healthy if s.ts > 7 * DAY]
    # Below the shipped rule's 3 spreads. (These fronts step at midnight, which a smooth
    # daily cycle follows less well than the hourly staircase did: 2.1 here, 1.5 before; on
    # the simulated fleet's weather the smooth cycle halved the healthy error.)
    assert max(abs(v) for v in judged if v is not None) < 2.5
    # Contact resistance: 12 °C more at full current, less than the healthy rise and about
    # one weather front.
    worn = feed(stage, "ev", 3 * DAY, _charger(12.0, _SWINGS), rng, t0=14.5 * DAY)
    assert max(s.value("signed_deviation", running) or 0.0 for s in worn) > 4.0


def _cold_snap_until(end: float) -> Callable[[float], float]:
    """Outdoor °C: a daily cycle, 10 °C colder from day 4 until ``end``, when it warms back
    up over three hours (the weather the whole fleet shares)."""

    def outdoor(ts: float) -> float:
        hour = (ts % DAY) / HOUR
        snap = (
            0.0 if ts < 4 * DAY else -10.0 * min(1.0, max(0.0, (end + 3 * HOUR - ts) / (3 * HOUR)))
        )
        return 8.0 + 4.0 * math.sin(2 * math.pi * (hour - 9.0) / 24.0) + snap

    return outdoor


def _charging_at(
    start_h: float, outdoor: Callable[[float], float]
) -> Callable[[float, random.Random], dict[str, float]]:
    heat = [0.0]

    def metrics(ts: float, r: random.Random) -> dict[str, float]:
        hour = (ts % DAY) / HOUR
        load = 1.0 if start_h <= hour < start_h + 2.0 else 0.0
        heat[0] += (1.0 - math.exp(-STEP / 1200.0)) * (load * load - heat[0])
        return {
            "power_kw": max(0.0, 11.0 * load + r.gauss(0, 0.02)),
            "connector_temp_c": outdoor(ts) + 2.0 + 16.0 * heat[0] + r.gauss(0, 0.3),
        }

    return metrics


def _charger_and_idle_peers(
    outdoor: Callable[[float], float],
) -> dict[str, Callable[[float, random.Random], dict[str, float]]]:
    """ "ev" charges every evening from 18:00; six peers charge around noon, so they stand
    idle in the same weather during its sessions."""
    return {"ev": _charging_at(18.0, outdoor)} | {
        f"peer{i}": _charging_at(11.0 + 0.5 * i, outdoor) for i in range(6)
    }


def test_a_session_follows_the_weather_its_idle_peers_see() -> None:
    # A cold snap ends just as one charger's evening session starts: every idle charger warms
    # 10 °C in three hours. Its connector, expected to stay as cold as it stood before the car
    # came (that offset fading over hours), read 4-6 spreads "hot" (seed 5's ev-0008 on the
    # simulated fleet). What its idle peers share now carries into the session.
    stage = DetectStage(DetectSettings())
    rng = random.Random(7)
    end = 12 * DAY + 18 * HOUR
    outdoor = _cold_snap_until(end)
    chargers = _charger_and_idle_peers(outdoor)
    session: list[float] = []
    for i in range(int(13 * DAY / STEP)):
        ts = DAY / 2 + i * STEP
        for device, metrics in chargers.items():
            (signals,) = stage.run([Telemetry(device, ts, metrics(ts, rng), model="EC")])
            value = signals.value("signed_deviation", "connector_temp_c (on)")
            if device == "ev" and end <= ts < end + 2 * HOUR and value is not None:
                session.append(value)
    assert len(session) > 12
    # Below the shipped rule's 3 spreads (4.4 before; the peers' smoothed move lags a little).
    assert max(abs(v) for v in session) < 3.0


def _adjusted_against_cold_peers(own: float) -> float:
    peers = FleetPeers(min_peers=5)
    for ts in (0.0, 300.0):
        for i in range(5):
            peers.adjust("EC", "connector", f"cold{i}", -2.0 - 0.1 * i, ts)
    return peers.adjust("EC", "connector", "device", own, 600.0)


@settings(max_examples=60, deadline=None)
@given(own=st.floats(min_value=-6.0, max_value=6.0))
def test_a_peer_adjusted_deviation_moves_as_little_as_the_device_does(own: float) -> None:
    # Peers 2 °C cold; the device's own deviation moves by a hundredth of a spread. Its
    # adjusted deviation may move by that, magnified by calm peers, but never jump: taking
    # the peers' whole median off as soon as the device crossed zero made a charger whose
    # connector went from +0.02 to -0.07 read 2.8 spreads hot.
    step = 0.01
    jump = abs(_adjusted_against_cold_peers(own + step) - _adjusted_against_cold_peers(own))
    assert jump <= step / MIN_SPREAD + 1e-9


def test_a_baseline_two_spreads_off_its_calm_peers_keeps_learning() -> None:
    # Six calm sensors; after learning, one reads two of its own spreads high
    # (a remounted sensor). Its calm peers magnify that beyond the hold threshold, which
    # must not freeze its baseline for good: judged in its own spreads it may keep learning,
    # and its deviation fades as the baseline follows.
    stage = DetectStage(DetectSettings(min_peers=5, learning_hours=24.0))
    rng = random.Random(5)
    offset_at = 2 * DAY
    deviations: list[float] = []
    for i in range(int(8 * DAY / STEP)):
        ts = i * STEP
        for d in range(6):
            offset = 1.0 if d == 0 and ts >= offset_at else 0.0
            value = 20.0 + offset + rng.gauss(0, 0.5)
            (signals,) = stage.run([Telemetry(f"s{d}", ts + d, {"t": value}, model="S")])
            if d == 0 and ts >= offset_at:
                deviations.append(signals.metrics["t"].deviation)
    day = int(DAY / STEP)
    first_day, last_day = deviations[:day], deviations[-day:]
    assert max(first_day) > DetectSettings().hold_z
    assert sum(last_day) / len(last_day) < 0.5 * sum(first_day[-day // 2 :]) / (day // 2)


def test_a_metric_carried_from_the_other_state_says_when_it_was_seen() -> None:
    stage = DetectStage(DetectSettings())
    running = "connector_temp_c (on)"
    out = _healthy_charger(stage, 9, random.Random(5))
    last_run = max(
        s.ts
        for s in out
        if s.ts > 8 * DAY and "power_kw (on)" in s.metrics and s.metrics["power_kw (on)"].at == s.ts
    )
    night = [s for s in out if s.ts > last_run and running in s.metrics]
    assert night, "the evening's running signal is carried into the night"
    # The running metric is old news at night; the idle one is fresh.
    assert all(s.seen_at("signed_deviation", running) == last_run for s in night)
    assert all(s.seen_at("signed_deviation", "connector_temp_c (off)") == s.ts for s in night)


def test_the_surroundings_carried_into_a_run_survive_a_checkpoint() -> None:
    stage = DetectStage(DetectSettings())
    rng = random.Random(8)
    outdoor = _cold_snap_until(30 * DAY)
    chargers = _charger_and_idle_peers(outdoor)
    for i in range(int(5 * DAY / STEP)):
        ts = DAY / 2 + i * STEP
        for device, metrics in chargers.items():
            stage.run([Telemetry(device, ts, metrics(ts, rng), model="EC")])
    device = stage._devices["ev"]
    residual, *_, shared = device.ambient["connector_temp_c"]
    assert not math.isnan(shared)
    state = json.loads(json.dumps(device.to_state()))
    restored = DeviceState.from_state(state, DetectSettings())
    residual_after, *_, shared_after = restored.ambient["connector_temp_c"]
    assert abs(residual_after - residual) < 1e-3
    assert abs(shared_after - shared) < 1e-3
    # A checkpoint from before the peers' share was kept: unknown, so the offset fades whole.
    for saved in state["amb"].values():
        del saved[4:]
    legacy = DeviceState.from_state(state, DetectSettings())
    *_, shared_legacy = legacy.ambient["connector_temp_c"]
    assert math.isnan(shared_legacy)
