"""The detect stage: validated telemetry in, per-device signals out, state checkpointable."""

from __future__ import annotations

import json
import zlib

from monitor.config import DetectSettings
from monitor.detect.base import SignalSet
from monitor.detect.device_state import DeviceState
from monitor.detect.peers import FleetPeers
from monitor.ingest.decode import Telemetry

_PEERS_KEY = "__fleet_peers__"


class DetectStage:
    """Keeps one :class:`DeviceState` per device and turns each message into a SignalSet."""

    def __init__(self, settings: DetectSettings) -> None:
        self._settings = settings
        self._devices: dict[str, DeviceState] = {}
        self._peers = FleetPeers(settings.min_peers)
        self._dirty: set[str] = set()

    def __len__(self) -> int:
        return len(self._devices)

    def run(self, batch: list[Telemetry]) -> list[SignalSet]:
        out: list[SignalSet] = []
        for msg in batch:
            model = msg.model or ""
            device = self._devices.get(msg.device_id)
            if device is None:
                device = self._devices[msg.device_id] = DeviceState(model, self._settings)
            elif model and device.model != model:
                device.model = model
            signals = device.observe(msg.device_id, msg.ts, msg.metrics, self._peers)
            self._dirty.add(msg.device_id)
            out.append(SignalSet(msg.device_id, msg.ts, device.model, signals))
        return out

    def checkpoint(self) -> dict[str, bytes]:
        """Serialised state of every device changed since the last checkpoint."""
        saved = {device_id: _pack(self._devices[device_id].to_state()) for device_id in self._dirty}
        if saved:
            saved[_PEERS_KEY] = _pack(self._peers.to_state())
        self._dirty.clear()
        return saved

    def mark_unsaved(self, states: dict[str, bytes]) -> None:
        """A checkpoint of these devices failed: include them in the next one."""
        self._dirty.update(k for k in states if k != _PEERS_KEY)

    def restore(self, saved: dict[str, bytes]) -> None:
        """Load states written by :meth:`checkpoint` (for example after a restart)."""
        for device_id, blob in saved.items():
            state = json.loads(zlib.decompress(blob))
            if device_id == _PEERS_KEY:
                self._peers.load_state(state)
            else:
                self._devices[device_id] = DeviceState.from_state(state, self._settings)

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


def _pack(state: object) -> bytes:
    return zlib.compress(json.dumps(state, separators=(",", ":")).encode(), 6)
