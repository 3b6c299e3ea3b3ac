"""Peer comparison: what the whole fleet of one model does at the same time.

When every heat pump's compressor runs hotter during a cold snap, or a firmware roll-out moves
a reading on every device, that is not a fault of each device. Each device's deviation is
measured against the median deviation of its model's devices, so a fleet-wide move cancels out
while one device drifting away from its peers stands out (a median, so that the drifting
device cannot drag its own reference along).
"""

from __future__ import annotations

import statistics
from typing import Any


class _Peers:
    __slots__ = ("latest", "median", "stale")

    def __init__(self) -> None:
        self.latest: dict[str, float] = {}
        self.median = 0.0
        self.stale = 0


class FleetPeers:
    """Latest sustained deviation of every device, per (model, metric), and their median."""

    def __init__(self, min_peers: int) -> None:
        self._min_peers = min_peers
        self._groups: dict[tuple[str, str], _Peers] = {}

    def adjust(self, model: str, metric: str, device_id: str, deviation: float) -> float:
        """Record ``deviation`` and return how far it is from the model's median."""
        group = self._groups.get((model, metric))
        if group is None:
            group = self._groups[(model, metric)] = _Peers()
        group.latest[device_id] = deviation
        size = len(group.latest)
        if size < self._min_peers:
            return deviation
        group.stale += 1
        # Recomputing once per eighth of a fleet round keeps the cost per message constant.
        if group.stale >= max(1, size // 8):
            group.median = statistics.median(group.latest.values())
            group.stale = 0
        return deviation - group.median

    def to_state(self) -> dict[str, Any]:
        return {
            "groups": [[m, k, g.latest] for (m, k), g in self._groups.items()],
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self._groups = {}
        for model, metric, latest in state.get("groups", []):
            group = self._groups[(model, metric)] = _Peers()
            group.latest = {str(d): float(v) for d, v in latest.items()}
            if group.latest:
                group.median = statistics.median(group.latest.values())
