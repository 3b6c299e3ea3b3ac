"""Gradual faults: how each degradation changes a device's metrics from onset to failure.

A fault's severity grows as the 1.5th power of the elapsed share of its onset→failure interval:
small at first (a careful per-device detector sees it after roughly the first 20–30 %),
accelerating towards failure, when the customer would notice, and still growing afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from simulators.products import Series
from simulators.weather import Array

Apply = Callable[[Series, Array], None]


@dataclass(frozen=True)
class FaultKind:
    """A way a product kind degrades; ``apply`` changes the series in place by severity."""

    name: str
    product: str
    metrics: tuple[str, ...]
    apply: Apply


def severity(ts: Array, onset: float, failure: float) -> Array:
    """0 before onset, 1 at failure, growing as elapsed share^1.5, capped at 2 after failure."""
    elapsed = np.clip((ts - onset) / (failure - onset), 0.0, None)
    return np.minimum(elapsed**1.5, 2.0)


def _bearing_wear(s: Series, sev: Array) -> None:
    m = s.metrics
    m["vibration_mms"] += sev * (5.0 * s.load + 0.3)
    m["motor_temp_c"] += sev * 10.0 * s.heat
    m["current_a"] += sev * 0.4 * s.load


def _impeller_clog(s: Series, sev: Array) -> None:
    m = s.metrics
    m["flow_lpm"] *= 1.0 - 0.45 * np.minimum(sev, 1.5)
    m["current_a"] *= 1.0 + 0.3 * sev * s.load
    m["motor_temp_c"] += sev * 5.0 * s.heat


def _refrigerant_leak(s: Series, sev: Array) -> None:
    m = s.metrics
    efficiency = 1.0 - 0.35 * np.minimum(sev, 1.5)
    m["cop"] *= efficiency
    # The same heat needs more electrical power at a lower COP.
    m["power_kw"] = np.where(s.load > 0, m["power_kw"] / efficiency, m["power_kw"])
    m["compressor_temp_c"] += sev * 25.0 * np.clip(s.heat / 0.3, 0, 1)


def _cell_degradation(s: Series, sev: Array) -> None:
    m = s.metrics
    m["capacity_kwh"] *= 1.0 - 0.2 * np.minimum(sev, 1.5)
    m["voltage_v"] -= sev * (0.6 + 2.0 * s.load)
    m["cell_temp_c"] += sev * (1.5 + 6.0 * s.heat)


def _contactor_wear(s: Series, sev: Array) -> None:
    m = s.metrics
    # Contact resistance grows: more heat at the connector and a voltage drop, under load only.
    m["connector_temp_c"] += sev * 35.0 * s.heat
    m["voltage_v"] -= sev * 3.0 * s.load


FAULT_KINDS: dict[str, FaultKind] = {
    f.name: f
    for f in (
        FaultKind(
            "bearing_wear",
            "water_pump",
            ("vibration_mms", "motor_temp_c", "current_a"),
            _bearing_wear,
        ),
        FaultKind(
            "impeller_clog", "water_pump", ("flow_lpm", "current_a", "motor_temp_c"), _impeller_clog
        ),
        FaultKind(
            "refrigerant_leak",
            "heat_pump",
            ("cop", "power_kw", "compressor_temp_c"),
            _refrigerant_leak,
        ),
        FaultKind(
            "cell_degradation",
            "home_battery",
            ("capacity_kwh", "voltage_v", "cell_temp_c"),
            _cell_degradation,
        ),
        FaultKind(
            "contactor_wear", "ev_charger", ("connector_temp_c", "voltage_v"), _contactor_wear
        ),
    )
}


def fault_kinds_for(product: str) -> list[FaultKind]:
    """The fault kinds a product kind can develop."""
    return [f for f in FAULT_KINDS.values() if f.product == product]
