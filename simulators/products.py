"""Healthy behaviour of each product kind, generated as whole per-device arrays.

Each kind is a :class:`ProductKind`: its metrics, models, firmware versions, and a
``simulate`` function that turns the device's conditions (time, local hour, outdoor
temperature, idle periods) into metric arrays with sensor noise. Faults and benign events are
applied afterwards by :mod:`simulators.faults` and :mod:`simulators.benign`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from simulators.weather import DAY, HOUR, Array

BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Metric:
    """One named reading: its rounding, the size of an isolated outlier (a spike), and its
    physical lower bound (``minimum``; a flow or a current at rest reads 0, not -0.05)."""

    name: str
    decimals: int
    spike: float
    minimum: float | None = None


@dataclass(frozen=True)
class Conditions:
    """What a device experiences, one entry per sample: the inputs of ``simulate``."""

    ts: Array
    hour: Array
    outdoor_c: Array
    idle: BoolArray
    step: float

    @property
    def day(self) -> npt.NDArray[np.int64]:
        """Index of the local day of each sample (0 = the first day of the simulation)."""
        local_days = np.floor((self.ts - self.hour * HOUR) / DAY).astype(np.int64)
        first: np.int64 = local_days[0]
        return local_days - first


@dataclass
class Series:
    """A device's metrics plus how hard it works, which faults use to scale their effect.

    ``load`` is the instantaneous load in [0, 1]; ``heat`` is its thermally smoothed version
    (what a temperature sensor sees lagging behind the load).
    """

    metrics: dict[str, Array]
    load: Array
    heat: Array


Simulate = Callable[[Conditions, np.random.Generator, str], Series]


@dataclass(frozen=True)
class ProductKind:
    """A product line: the metrics every device of the kind reports and how it behaves.

    ``fw_shift`` is the metric that a firmware update recalibrates and by how much (a benign,
    small constant offset). ``temperature_dependent`` lists metrics that follow the outdoor
    temperature, so a cold snap moves them.
    """

    kind: str
    id_prefix: str
    models: tuple[str, ...]
    metrics: tuple[Metric, ...]
    fw_versions: tuple[str, str]
    fw_shift: tuple[str, float]
    temperature_dependent: tuple[str, ...]
    simulate: Simulate

    @property
    def metric_names(self) -> tuple[str, ...]:
        """The names of this kind's metrics, in report order."""
        return tuple(m.name for m in self.metrics)


def smooth(x: Array, tau_s: float, step: float) -> Array:
    """Exponential smoothing with time constant ``tau_s`` (a first-order thermal lag)."""
    tau = max(tau_s / step, 1e-6)
    length = int(5 * tau) + 1
    kernel = np.exp(-np.arange(length) / tau)
    kernel /= kernel.sum()
    padded = np.concatenate([np.full(length, x[0]), x])
    return np.convolve(padded, kernel)[length : length + len(x)]


def correlated_uniform(rng: np.random.Generator, n: int, tau_s: float, step: float) -> Array:
    """Uniform(0, 1) values that change slowly, so on/off decisions come in runs, not flicker."""
    z = smooth(rng.standard_normal(n), tau_s, step)
    ranks = np.argsort(np.argsort(z))
    return (ranks + 0.5) / n


def _bump(hour: Array, centre: float, width: float) -> Array:
    return np.exp(-(((hour - centre) / width) ** 2))


def _smoothstep(x: Array) -> Array:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _water_pump(c: Conditions, rng: np.random.Generator, model: str) -> Series:
    n = len(c.ts)
    big = model == "WP-350"
    flow_nom, pressure_nom, current_nom = (65.0, 4.0, 7.0) if big else (40.0, 3.2, 4.5)
    # Household demand: a morning and an evening peak, little at night.
    p_on = np.clip(0.12 + 0.6 * _bump(c.hour, 7.5, 1.5) + 0.45 * _bump(c.hour, 20.0, 2.0), 0, 0.9)
    running = (correlated_uniform(rng, n, 1200.0, c.step) < p_on) & ~c.idle
    on = running.astype(np.float64)
    demand = 0.85 + 0.15 * correlated_uniform(rng, n, 3 * HOUR, c.step)
    flow = on * flow_nom * demand
    pressure = np.where(running, pressure_nom * (1.15 - 0.15 * demand), 0.9 * pressure_nom)
    current = np.where(running, current_nom * (0.6 + 0.4 * demand), 0.05)
    vibration = np.where(running, 1.8 * (0.8 + 0.2 * demand), 0.1)
    heat = smooth(on, 45 * 60.0, c.step)
    basement_c = 12.0 + 0.3 * c.outdoor_c
    motor_temp = basement_c + 28.0 * heat
    metrics = {
        "flow_lpm": flow + on * rng.normal(0, 0.6, n),
        "pressure_bar": pressure + rng.normal(0, 0.03, n),
        "current_a": current + rng.normal(0, 0.06, n),
        "vibration_mms": vibration + rng.normal(0, 0.2, n),
        "motor_temp_c": motor_temp + rng.normal(0, 0.25, n),
    }
    return Series(metrics, on, heat)


def _heat_pump(c: Conditions, rng: np.random.Generator, model: str) -> Series:
    n = len(c.ts)
    capacity_kw = 12.0 if model == "HP-12" else 8.0
    setpoint = np.where((c.hour >= 22) | (c.hour < 6), 17.0, 20.0)
    # Sized for -12 °C outdoors; hot water in the morning and evening on top.
    space_kw = capacity_kw * np.clip(setpoint - c.outdoor_c, 0, None) / 32.0
    water_kw = 2.0 * (_bump(c.hour, 7.0, 0.7) + _bump(c.hour, 19.5, 0.7))
    demand_kw = np.clip(space_kw + water_kw, 0, capacity_kw)
    min_kw = 0.3 * capacity_kw
    cycling = correlated_uniform(rng, n, 900.0, c.step) < demand_kw / min_kw
    running = ((demand_kw >= min_kw) | cycling) & ~c.idle
    heat_kw = np.where(running, np.maximum(demand_kw, min_kw), 0.0)
    load = heat_kw / capacity_kw
    heat = smooth(load, 20 * 60.0, c.step)
    # Weather-compensated flow temperature; COP from a fraction of the Carnot limit.
    supply_target = np.clip(30.0 + 0.6 * (20.0 - c.outdoor_c), 28.0, 55.0)
    supply = 24.0 + (supply_target - 24.0) * smooth(running.astype(np.float64), 30 * 60.0, c.step)
    cop = 0.45 * (supply_target + 273.15) / (supply_target - c.outdoor_c + 5.0)
    discharge = supply_target + 20.0 + 0.3 * (supply_target - c.outdoor_c)
    compressor = c.outdoor_c + 5.0 + (discharge - c.outdoor_c - 5.0) * np.clip(heat / 0.3, 0, 1)
    metrics = {
        "outdoor_temp_c": c.outdoor_c + rng.normal(0, 0.2, n),
        "supply_temp_c": supply + rng.normal(0, 0.3, n),
        "power_kw": np.where(running, heat_kw / cop, 0.02) + rng.normal(0, 0.03, n),
        "cop": cop + rng.normal(0, 0.05, n),
        "compressor_temp_c": compressor + rng.normal(0, 0.4, n),
    }
    return Series(metrics, load, heat)


def _battery_soc(c: Conditions, rng: np.random.Generator) -> Array:
    """State of charge: solar charging 09–15, discharging 17–24, a slow drain overnight."""
    day = c.day
    days = int(day.max()) + 2
    low = 15.0 + rng.uniform(0, 5, days)
    peak = np.minimum(95.0, low + rng.uniform(0.35, 1.0, days) * 80.0)
    h = c.hour
    lo, pk, next_lo = low[day], peak[day], low[day + 1]
    soc = np.select(
        [h < 9, h < 15, h < 17],
        [
            lo + 6.0 * (1 - h / 9),
            lo + (pk - lo) * _smoothstep((h - 9) / 6),
            pk,
        ],
        pk + (next_lo + 6.0 - pk) * _smoothstep((h - 17) / 7),
    )
    # An unused battery holds its charge: freeze it at the value it had when idling began.
    idle_start = c.idle & ~np.concatenate([[False], c.idle[:-1]])
    frozen = np.maximum.accumulate(np.where(idle_start, np.arange(len(h)), 0))
    return np.where(c.idle, soc[frozen], soc)


def _home_battery(c: Conditions, rng: np.random.Generator, model: str) -> Series:
    n = len(c.ts)
    capacity_kwh = 13.0 if model == "HB-13" else 10.0
    soc = _battery_soc(c, rng)
    nominal_v = 51.2
    # Positive current charges; from the change of stored energy per step.
    current = np.gradient(soc, c.ts) / 100.0 * capacity_kwh * 1000.0 * HOUR / nominal_v
    current = np.where(c.idle, 0.0, current)
    load = np.abs(current) / (0.5 * capacity_kwh * 1000.0 / nominal_v)
    heat = smooth(np.abs(current), 40 * 60.0, c.step)
    garage_c = 10.0 + 0.5 * c.outdoor_c
    voltage = 49.6 + 3.4 * soc / 100.0 + 0.02 * current
    metrics = {
        "soc_pct": soc + rng.normal(0, 0.2, n),
        "voltage_v": voltage + rng.normal(0, 0.05, n),
        "current_a": current + rng.normal(0, 0.3, n),
        "cell_temp_c": garage_c + 0.12 * heat + rng.normal(0, 0.15, n),
        "capacity_kwh": 0.98 * capacity_kwh + rng.normal(0, 0.1, n),
    }
    return Series(metrics, np.clip(load, 0, 1), heat / max(float(heat.max()), 1.0))


def _charging_sessions(c: Conditions, rng: np.random.Generator, power_kw: float) -> Array:
    """Charging current as a fraction of the maximum: evening sessions, some at midday."""
    fraction = np.zeros(len(c.ts))
    day = c.day
    for d in range(int(day.max()) + 1):
        starts = []
        if rng.random() < 0.75:
            starts.append(rng.uniform(17.0, 20.5))
        if rng.random() < 0.2:
            starts.append(rng.uniform(11.0, 14.0))
        for start_h in starts:
            hours = rng.uniform(8.0, 30.0) / power_kw
            elapsed = c.hour - start_h
            in_session = (day == d) & (elapsed >= 0) & (elapsed < hours)
            # The car's battery tapers the current over the last 15 % of the session.
            taper = np.clip((hours - elapsed) / (0.15 * hours), 0.3, 1.0)
            fraction = np.where(in_session, taper, fraction)
    return np.where(c.idle, 0.0, fraction)


def _ev_charger(c: Conditions, rng: np.random.Generator, model: str) -> Series:
    n = len(c.ts)
    max_a = 32.0 if model == "EC-22" else 16.0
    max_kw = 3 * 230.0 * max_a / 1000.0
    load = _charging_sessions(c, rng, max_kw)
    current = max_a * load * (0.97 + 0.02 * correlated_uniform(rng, n, HOUR, c.step))
    current = np.where(load > 0, current, 0.0)
    # Connector heating goes with I²; both models reach about the same rise at full current.
    heat = smooth(load**2, 20 * 60.0, c.step)
    voltage = 230.0 + 2.0 * np.sin(2 * np.pi * c.hour / 24.0) - 0.05 * current
    metrics = {
        "power_kw": 3 * voltage * current / 1000.0 * 0.98 + rng.normal(0, 0.02, n),
        "current_a": current + rng.normal(0, 0.05, n),
        "voltage_v": voltage + rng.normal(0, 0.8, n),
        "connector_temp_c": c.outdoor_c + 2.0 + 16.0 * heat + rng.normal(0, 0.3, n),
    }
    return Series(metrics, load, heat)


PRODUCTS: dict[str, ProductKind] = {
    p.kind: p
    for p in (
        ProductKind(
            kind="water_pump",
            id_prefix="wp",
            models=("WP-200", "WP-350"),
            metrics=(
                Metric("flow_lpm", 2, 25.0, minimum=0.0),
                Metric("pressure_bar", 3, 1.5),
                Metric("current_a", 3, 4.0, minimum=0.0),
                Metric("vibration_mms", 3, 6.0, minimum=0.0),
                Metric("motor_temp_c", 2, 25.0),
            ),
            fw_versions=("3.2.1", "3.3.0"),
            fw_shift=("pressure_bar", 0.06),
            temperature_dependent=("motor_temp_c",),
            simulate=_water_pump,
        ),
        ProductKind(
            kind="heat_pump",
            id_prefix="hp",
            models=("HP-8", "HP-12"),
            metrics=(
                Metric("outdoor_temp_c", 2, 20.0),
                Metric("supply_temp_c", 2, 20.0),
                Metric("power_kw", 3, 5.0, minimum=0.0),
                Metric("cop", 3, 3.0, minimum=0.0),
                Metric("compressor_temp_c", 2, 30.0),
            ),
            fw_versions=("1.8.4", "1.9.0"),
            fw_shift=("supply_temp_c", 0.5),
            temperature_dependent=("outdoor_temp_c", "supply_temp_c", "power_kw", "cop"),
            simulate=_heat_pump,
        ),
        ProductKind(
            kind="home_battery",
            id_prefix="hb",
            models=("HB-10", "HB-13"),
            metrics=(
                Metric("soc_pct", 2, 40.0),
                Metric("voltage_v", 3, 4.0),
                Metric("current_a", 2, 60.0),
                Metric("cell_temp_c", 2, 20.0),
                Metric("capacity_kwh", 3, 3.0),
            ),
            fw_versions=("4.0.2", "4.1.0"),
            fw_shift=("voltage_v", 0.15),
            temperature_dependent=("cell_temp_c",),
            simulate=_home_battery,
        ),
        ProductKind(
            kind="ev_charger",
            id_prefix="ev",
            models=("EC-11", "EC-22"),
            metrics=(
                Metric("power_kw", 3, 10.0, minimum=0.0),
                Metric("current_a", 2, 20.0, minimum=0.0),
                Metric("voltage_v", 2, 25.0),
                Metric("connector_temp_c", 2, 30.0),
            ),
            fw_versions=("2.5.0", "2.6.1"),
            fw_shift=("voltage_v", 1.0),
            temperature_dependent=("connector_temp_c",),
            simulate=_ev_charger,
        ),
    )
}
