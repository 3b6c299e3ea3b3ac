"""The detect stage: validated telemetry in, per-device signals out, state checkpointable."""

from __future__ import annotations

import json
import zlib
from collections import OrderedDict
from itertools import islice
from typing import Any

from monitor.config import DetectSettings
from monitor.detect.base import SignalSet
from monitor.detect.device_state import DeviceState
from monitor.detect.peers import FleetPeers
from monitor.ingest.decode import Telemetry

_PEERS_KEY = "__fleet_peers__"
_PRIOR_CANDIDATES = 50
"""Devices of a model looked at for a cold-start prior: any warm one will do."""


class DetectStage:
    """Keeps one :class:`DeviceState` per device and turns each message into a SignalSet."""

    def __init__(self, settings: DetectSettings, *, silence_on_receipt: bool = False) -> None:
        self._settings = settings
        self._devices: dict[str, DeviceState] = {}
        self._by_model: dict[str, list[str]] = {}
        self._peers = FleetPeers(settings.min_peers)
        self._dirty: OrderedDict[str, None] = OrderedDict()
        """Devices changed since they were last checkpointed, longest-unsaved first."""
        self.silence_on_receipt = silence_on_receipt
        """Live: silence counts from when a device was last *heard* (wall clock), so a
        backlog replayed with old timestamps is not silence. Backtest: from event time."""
        self._heard: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._devices)

    def run(self, batch: list[Telemetry]) -> list[SignalSet]:
        out: list[SignalSet] = []
        for msg in batch:
            model = msg.model or ""
            device = self._devices.get(msg.device_id)
            if device is None:
                group = model or peer_group(msg.metrics)
                device = self._add(
                    msg.device_id, DeviceState(model, self._settings, self._prior, group)
                )
            elif model and device.model != model:
                device.model = model
            if model and not device.kin:
                device.kin = peer_group(msg.metrics)
            signals = device.observe(msg.device_id, msg.ts, msg.metrics, self._peers)
            self._heard[msg.device_id] = msg.received or msg.ts
            self._dirty.setdefault(msg.device_id)
            out.append(
                SignalSet(
                    msg.device_id,
                    msg.ts,
                    device.model,
                    signals,
                    extra=device.extra
                    if device.anomaly is None
                    else {**device.extra, "anomaly": device.anomaly},
                    predicted_failure_at=device.failure_at,
                    peers=device.group,
                )
            )
        return out

    def silent(self, now: float) -> list[SignalSet]:
        """A signal set for every device silent for ``silence_min_intervals`` of its own
        normal message intervals at ``now``, carrying ``silence`` (in intervals) and the
        device's latest metric signals, so that a silence does not reset other rules."""
        out: list[SignalSet] = []
        threshold = self._settings.silence_min_intervals
        for device_id, device in self._devices.items():
            heard = self._heard.get(device_id) if self.silence_on_receipt else None
            silence = device.interval.silence(now, heard)
            if silence >= threshold:
                signals = {name: signal for name, (_, signal) in device.recent.items()}
                out.append(
                    SignalSet(
                        device_id,
                        now,
                        device.model,
                        signals,
                        extra={**device.extra, "silence": silence},
                        predicted_failure_at=device.failure_at,
                        peers=device.group,
                    )
                )
        return out

    def accept_as_normal(self, device_id: str) -> None:
        """A person judged the device's current behaviour healthy (a case was a false alarm):
        re-centre its baselines on it, clear held deviations and trends, and re-learn."""
        device = self._devices.get(device_id)
        if device is not None:
            device.accept_as_normal()
            self._dirty.setdefault(device_id)

    def relearn(self, device_id: str) -> None:
        """The device was repaired: clear held deviations and trends, and learn its behaviour
        from now on for a new learning period (its baselines start where they were)."""
        device = self._devices.get(device_id)
        if device is not None:
            device.relearn()
            self._dirty.setdefault(device_id)

    def evidence_series(self, device_id: str) -> dict[str, list[list[float]]]:
        """Per metric up to 72 bucket points ``[ts, observed_mean, expected, band_low,
        band_high]`` (hourly on five-minute telemetry); empty for an unknown device."""
        device = self._devices.get(device_id)
        return {} if device is None else device.evidence_series()

    @property
    def unsaved(self) -> int:
        """How many devices changed since they were last checkpointed."""
        return len(self._dirty)

    def checkpoint(self, limit: int | None = None) -> dict[str, bytes]:
        """Serialised state of the devices changed since they were last checkpointed: all of
        them and the fleet peers' state, or with ``limit`` at most that many devices, those
        unsaved longest first (so a device changing all the time does not keep others
        waiting), and no peers' state (:meth:`checkpoint_peers`)."""
        if limit is None:
            saved = {device_id: self._pack_device(device_id) for device_id in self._dirty}
            self._dirty.clear()
            if saved:
                saved.update(self.checkpoint_peers())
            return saved
        picked = list(islice(self._dirty, limit))
        for device_id in picked:
            del self._dirty[device_id]
        return {device_id: self._pack_device(device_id) for device_id in picked}

    def checkpoint_peers(self) -> dict[str, bytes]:
        """The fleet peers' state, under its own checkpoint key."""
        return {_PEERS_KEY: _pack(self._peers.to_state())}

    def mark_unsaved(self, states: dict[str, bytes]) -> None:
        """A checkpoint of these devices failed: they are the first of the next one."""
        for device_id in reversed(states):
            if device_id != _PEERS_KEY:
                self._dirty[device_id] = None
                self._dirty.move_to_end(device_id, last=False)

    def restore(self, saved: dict[str, bytes]) -> None:
        """Load states written by :meth:`checkpoint` (for example after a restart)."""
        for device_id, blob in saved.items():
            state = json.loads(zlib.decompress(blob))
            if device_id == _PEERS_KEY:
                self._peers.load_state(state)
            else:
                self._add(device_id, DeviceState.from_state(state, self._settings, self._prior))

    def duty_metric(self, device_id: str) -> str | None:
        """The metric that tells whether ``device_id`` is running, once it has been found."""
        device = self._devices.get(device_id)
        return None if device is None else device.duty.metric

    def learned_samples(self, device_id: str) -> dict[str, int]:
        """How many samples each metric's baseline of ``device_id`` has learned from."""
        device = self._devices.get(device_id)
        if device is None:
            return {}
        return {name: t.baseline.n for name, t in device.trackers.items()}

    def _pack_device(self, device_id: str) -> bytes:
        return _pack(self._devices[device_id].to_state())

    def _add(self, device_id: str, device: DeviceState) -> DeviceState:
        if device_id not in self._devices:
            self._by_model.setdefault(device.group, []).append(device_id)
        self._devices[device_id] = device
        return device

    def _prior(self, group: str, key: str) -> dict[str, Any] | None:
        """A warm, judged baseline of ``key`` from another device of the same model (peer
        ``group``): a new device starts from its model's fleet behaviour, not from nothing."""
        for other in self._by_model.get(group, [])[:_PRIOR_CANDIDATES]:
            tracker = self._devices[other].trackers.get(key)
            if tracker is not None and tracker.baseline.warm and tracker.history.index:
                return tracker.baseline.to_state()
        return None


def peer_group(metrics: dict[str, float]) -> str:
    """A device that does not say its model is compared with devices that report the same
    metrics: in a file without models, a heat pump's ``power_kw`` is not a charger's."""
    return "metrics:" + ",".join(sorted(metrics))


def _pack(state: object) -> bytes:
    return zlib.compress(json.dumps(state, separators=(",", ":")).encode(), 6)
