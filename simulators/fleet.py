"""The simulated fleet: devices, their readings in time order, and the ground truth.

Everything is decided by the fleet seed: each device draws from its own numpy Generator
seeded from (seed, device number), so the same seed always gives the same readings, and the
simulated clock runs as fast as the caller iterates (nothing sleeps here).
"""

from __future__ import annotations

import heapq
import itertools
import math
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from simulators.benign import DeviceBenign, plan_benign
from simulators.customers import Customer, make_customer
from simulators.faults import FaultKind, fault_kinds_for, severity
from simulators.products import PRODUCTS, Conditions, ProductKind
from simulators.weather import DAY, Array, Weather, local_hour, make_weather

MANIFEST_FIELDS = (
    "device_id",
    "kind",
    "model",
    "customer_id",
    "customer_name",
    "email",
    "phone",
    "language",
    "channel",
    "timezone",
    "site",
    "quiet_hours",
)
_KIND_ORDER = ("water_pump", "heat_pump", "home_battery", "ev_charger")
_PLAN_STREAM, _SERIES_STREAM, _BENIGN_STREAM = 0, 1, 2
_FLEET_STREAM = 2**31 - 1


@dataclass(frozen=True)
class Reading:
    """One telemetry message as a device would send it."""

    device_id: str
    ts: float
    metrics: dict[str, float]
    seq: int
    fw: str
    model: str

    def payload(self) -> dict[str, Any]:
        """The telemetry payload as the device contract defines it (without the device id,
        which the topic carries)."""
        return {
            "ts": self.ts,
            "metrics": self.metrics,
            "seq": self.seq,
            "fw": self.fw,
            "model": self.model,
        }


@dataclass(frozen=True)
class Fault:
    """A planned degradation: it starts at ``onset`` and the customer notices at ``failure``."""

    kind: FaultKind
    onset: float
    failure: float


@dataclass(frozen=True)
class Device:
    """One simulated device and everything planned for it."""

    number: int
    device_id: str
    product: ProductKind
    model: str
    customer: Customer
    phase: float
    faults: tuple[Fault, ...]
    benign: DeviceBenign


@dataclass(frozen=True)
class DeviceSeries:
    """A device's whole series: times, metric arrays (rounded as sent), and what was sent."""

    ts: Array
    metrics: dict[str, Array]
    sent: np.ndarray[Any, np.dtype[np.bool_]]


class Fleet:
    """A simulated fleet; build it with :func:`build_fleet`.

    Attributes: ``seed``, ``start`` and ``end`` (epoch seconds), ``step`` (seconds between a
    device's readings), ``devices`` (planned devices) and ``weather``.
    """

    def __init__(
        self,
        *,
        seed: int,
        start: float,
        step: float,
        samples: int,
        weather: Weather,
        devices: list[Device],
    ) -> None:
        self.seed = seed
        self.start = start
        self.step = step
        self.samples = samples
        self.end = start + samples * step
        self.weather = weather
        self.devices = devices
        self._series: dict[str, DeviceSeries] = {}

    @property
    def metric_names(self) -> list[str]:
        """The union of all devices' metric names, sorted."""
        return sorted({m for d in self.devices for m in d.product.metric_names})

    def series(self, device_id: str) -> DeviceSeries:
        """The device's arrays (generated on first use, then cached)."""
        if device_id not in self._series:
            device = next((d for d in self.devices if d.device_id == device_id), None)
            if device is None:
                raise KeyError(f"no device {device_id!r} in this fleet")
            self._series[device_id] = self._simulate(device)
        return self._series[device_id]

    def readings(self) -> Iterator[Reading]:
        """Every reading of every device, in time order, as sent (gaps left out).

        Late and duplicate delivery are not applied here; see :func:`delivery_order`.
        """
        order = sorted(self.devices, key=lambda d: (d.phase, d.number))
        chunk = max(int(DAY // self.step), 1)
        for first in range(0, self.samples, chunk):
            last = min(first + chunk, self.samples)
            rows = []
            for device in order:
                s = self.series(device.device_id)
                names = list(s.metrics)
                values = np.column_stack([s.metrics[n][first:last] for n in names]).tolist()
                rows.append((device, names, s.ts[first:last].tolist(), values, s.sent[first:last]))
            for k in range(last - first):
                i = first + k
                for device, names, ts, values, sent in rows:
                    if sent[k]:
                        yield Reading(
                            device.device_id,
                            ts[k],
                            dict(zip(names, values[k], strict=True)),
                            i + 1,
                            _fw(device, i),
                            device.model,
                        )

    def truth(self) -> dict[str, Any]:
        """The ground truth, JSON-serialisable: faults and benign events per device."""
        devices: dict[str, Any] = {}
        for d in self.devices:
            ts = self._grid(d)
            devices[d.device_id] = {
                "kind": d.product.kind,
                "model": d.model,
                "site": d.customer.site.name,
                "metrics": list(d.product.metric_names),
                "faults": [
                    {
                        "kind": f.kind.name,
                        "onset": f.onset,
                        "failure": f.failure,
                        "metrics": list(f.kind.metrics),
                    }
                    for f in d.faults
                ],
                "benign": d.benign.truth(ts, self.step, self.weather),
            }
        snap = self.weather.cold_snap
        return {
            "seed": self.seed,
            "start": self.start,
            "end": self.end,
            "step": self.step,
            "cold_snap": None
            if snap is None
            else {"start": snap.start, "end": snap.end, "depth_c": snap.depth_c},
            "devices": devices,
        }

    def manifest_rows(self) -> list[dict[str, str]]:
        """One row per device for importing devices and owners (keys: ``MANIFEST_FIELDS``)."""
        return [
            {
                "device_id": d.device_id,
                "kind": d.product.kind,
                "model": d.model,
                "customer_id": d.customer.customer_id,
                "customer_name": d.customer.name,
                "email": d.customer.email,
                "phone": d.customer.phone,
                "language": d.customer.language,
                "channel": d.customer.channel,
                "timezone": d.customer.site.timezone,
                "site": d.customer.site.name,
                "quiet_hours": d.customer.quiet_hours,
            }
            for d in self.devices
        ]

    def _grid(self, device: Device) -> Array:
        return self.start + device.phase + np.arange(self.samples, dtype=np.float64) * self.step

    def _simulate(self, device: Device) -> DeviceSeries:
        rng = np.random.default_rng([self.seed, device.number, _SERIES_STREAM])
        ts = self._grid(device)
        site = device.customer.site
        conditions = Conditions(
            ts=ts,
            hour=local_hour(ts, site),
            outdoor_c=self.weather.outdoor_temp(ts, site),
            idle=device.benign.idle_mask(self.samples),
            step=self.step,
        )
        series = device.product.simulate(conditions, rng, device.model)
        for fault in device.faults:
            fault.kind.apply(series, severity(ts, fault.onset, fault.failure))
        for metric in device.product.metrics:
            if metric.minimum is not None:
                np.maximum(
                    series.metrics[metric.name], metric.minimum, out=series.metrics[metric.name]
                )
        device.benign.apply(series.metrics)
        metrics = {
            m.name: np.round(series.metrics[m.name], m.decimals) + 0.0
            for m in device.product.metrics
        }
        return DeviceSeries(ts, metrics, device.benign.sent_mask(self.samples))


def _fw(device: Device, index: int) -> str:
    fw = device.benign.firmware
    if fw is not None and index >= fw.index:
        return fw.after
    return device.product.fw_versions[0]


def build_fleet(  # noqa: PLR0917 -- the agreed public signature
    seed: int,
    devices: int,
    days: float,
    step: float = 300.0,
    start: float | None = None,
    fault_share: float = 0.2,
) -> Fleet:
    """Plan a fleet of ``devices`` devices over ``days`` days with a reading every ``step`` s.

    ``start`` (epoch seconds) defaults to now − days, rounded down to the step, so no
    timestamp lies in the future. About ``fault_share`` of the devices (at least one when the
    share is positive) develop one gradual fault each. Kinds are assigned round-robin.
    """
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if devices < 0 or days <= 0 or step <= 0:
        raise ValueError(f"need devices >= 0, days > 0, step > 0; got {devices}, {days}, {step}")
    if not 0.0 <= fault_share <= 1.0:
        raise ValueError(f"fault_share must be within [0, 1], got {fault_share}")
    samples = max(int(days * DAY / step), 1)
    if start is None:
        start = math.floor((time.time() - samples * step) / step) * step
    end = start + samples * step
    fleet_rng = np.random.default_rng([seed, _FLEET_STREAM])
    weather = make_weather(fleet_rng, start, end)
    n_faulty = max(1, round(fault_share * devices)) if fault_share > 0 and devices else 0
    faulty = {int(i) for i in fleet_rng.choice(devices, size=n_faulty, replace=False)}
    planned = [
        _plan_device(
            seed,
            number,
            start=start,
            end=end,
            step=step,
            samples=samples,
            faulty=number - 1 in faulty,
        )
        for number in range(1, devices + 1)
    ]
    return Fleet(
        seed=seed, start=float(start), step=step, samples=samples, weather=weather, devices=planned
    )


def _plan_device(
    seed: int, number: int, *, start: float, end: float, step: float, samples: int, faulty: bool
) -> Device:
    rng = np.random.default_rng([seed, number, _PLAN_STREAM])
    product = PRODUCTS[_KIND_ORDER[(number - 1) % len(_KIND_ORDER)]]
    model = product.models[int(rng.integers(len(product.models)))]
    customer = make_customer(rng, number)
    phase = float(np.floor(rng.uniform(0, step)))
    faults: tuple[Fault, ...] = ()
    if faulty:
        kinds = fault_kinds_for(product.kind)
        kind = kinds[int(rng.integers(len(kinds)))]
        duration = float(np.floor(rng.uniform(5.0, 12.0) * DAY))
        # Give the device a healthy history first (7 days when the span allows it), and
        # let the failure fall inside the span when there is room for it.
        earliest = start + min(7 * DAY, 0.3 * (end - start))
        latest = max(earliest, end - duration)
        onset = float(np.floor(rng.uniform(earliest, latest)))
        faults = (Fault(kind, onset, onset + duration),)
    benign = plan_benign(
        np.random.default_rng([seed, number, _BENIGN_STREAM]), product, samples, step
    )
    device_id = f"{product.id_prefix}-{number:04d}"
    return Device(number, device_id, product, model, customer, phase, faults, benign)


def delivery_order(readings: Iterable[Reading], truth: Mapping[str, Any]) -> Iterator[Reading]:
    """The readings in the order a broker would see them: late ones later, duplicates twice.

    ``readings`` must be in time order (as :meth:`Fleet.readings` gives them); which readings
    are late (and by how much) or duplicated comes from the truth's benign events.
    """
    late: dict[tuple[str, int], float] = {}
    duplicated: set[tuple[str, int]] = set()
    for device_id, device in truth["devices"].items():
        for event in device["benign"]:
            if event["kind"] == "late_message":
                late[(device_id, int(event["seq"]))] = float(event["delay"])
            elif event["kind"] == "duplicate_message":
                duplicated.add((device_id, int(event["seq"])))
    held: list[tuple[float, int, Reading]] = []
    counter = itertools.count()
    for reading in readings:
        while held and held[0][0] <= reading.ts:
            yield heapq.heappop(held)[2]
        key = (reading.device_id, reading.seq)
        copies = 2 if key in duplicated else 1
        if key in late:
            for _ in range(copies):
                heapq.heappush(held, (reading.ts + late[key], next(counter), reading))
        else:
            yield from itertools.repeat(reading, copies)
    while held:
        yield heapq.heappop(held)[2]
