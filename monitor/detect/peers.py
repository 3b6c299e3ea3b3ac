"""Peer comparison: what the whole fleet of one model does at the same time.

When every heat pump's compressor runs hotter during a cold snap, or a firmware roll-out moves
a reading on every device, that is not a fault of each device. Each device's deviation is
measured against the running mean deviation of its model's other devices, so a fleet-wide move
cancels out while one device drifting away from its peers stands out.
"""

from __future__ import annotations

from typing import Any


class FleetPeers:
    """Running mean of the sustained deviation per (model, metric) across devices."""

    def __init__(self, min_peers: int) -> None:
        self._min_peers = min_peers
        self._mean: dict[tuple[str, str], float] = {}
        self._devices: dict[tuple[str, str], set[str]] = {}

    def adjust(self, model: str, metric: str, device_id: str, deviation: float) -> float:
        """Fold ``deviation`` into the fleet mean and return the device's share of it."""
        key = (model, metric)
        devices = self._devices.setdefault(key, set())
        devices.add(device_id)
        mean = self._mean.get(key, 0.0)
        # About three rounds of every device's messages make up the mean.
        mean += (deviation - mean) / (3.0 * len(devices))
        self._mean[key] = mean
        if len(devices) < self._min_peers:
            return deviation
        return deviation - mean

    def to_state(self) -> dict[str, Any]:
        return {
            "mean": [[m, k, v] for (m, k), v in self._mean.items()],
            "devices": [[m, k, sorted(v)] for (m, k), v in self._devices.items()],
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self._mean = {(m, k): float(v) for m, k, v in state.get("mean", [])}
        self._devices = {(m, k): set(v) for m, k, v in state.get("devices", [])}
