"""Multivariate anomaly: the relationships between a device's metrics, not each metric alone.

A pump whose current rises while its flow falls may keep each metric inside its own band
while the pair is impossible for a healthy pump. During the learning period the vector of the
device's per-metric deviations (already free of the daily cycle and the operating state) is
collected; once, after learning, scikit-learn's Minimum Covariance Determinant fits a robust
mean and covariance to it. From then on every fourth message interval costs one small
quadratic form in plain Python: the Mahalanobis distance, expressed in robust standard units
of the distances the device's own healthy data had, and smoothed on event time like the
per-metric deviation (so scoring a sample of the messages keeps its time constant).

Only the fitted numbers are state (mean, the precision matrix's upper triangle, the healthy
distance's median and spread); the training vectors live in memory, as packed single-precision
floats, until the fit and are collected again if a restart interrupts them.
"""

from __future__ import annotations

import math
import warnings
from array import array
from typing import Any

import numpy as np
from sklearn.covariance import MinCovDet

from monitor.detect.seasonal_baseline import decay

MIN_FIT = 96
"""Training vectors needed for a fit (a third of a day of five-minute telemetry)."""
_MAX_BUFFER = 192
"""Training vectors held in memory (halved, doubling the stride, when full): bounded memory
per learning device, still spanning the whole learning period."""
_MIN_SPREAD = 0.25
_MAX_SCORE = 20.0
SCORE_EVERY = 4
"""Messages are scored when their interval number (event time over the device's interval) is
a multiple of this: a quarter of the quadratic forms, chosen by time alone, so a restarted
monitor scores the same messages."""


class Relationships:
    """One operating state's joint model of a device's per-metric deviations."""

    __slots__ = (
        "buffer",
        "keys",
        "mean",
        "median",
        "precision",
        "seen",
        "smoothed",
        "spread",
        "stride",
    )

    def __init__(self) -> None:
        self.keys: tuple[str, ...] = ()
        self.buffer = array("f")
        """Training vectors, flat: ``len(keys)`` floats each (a list of lists cost ~200 bytes
        a vector, the bulk of a learning device's memory)."""
        self.stride = 1
        self.seen = 0
        self.mean: list[float] = []
        self.precision: list[list[float]] = []
        self.median = 0.0
        self.spread = 1.0
        self.smoothed = 0.0

    @property
    def fitted(self) -> bool:
        return bool(self.mean)

    def collect(self, zs: dict[str, float]) -> None:
        """Keep one healthy vector for the fit (every ``stride``-th, so the buffer stays
        bounded and still spans the whole learning period)."""
        if len(zs) < 2:
            return
        keys = tuple(sorted(zs))
        if keys != self.keys:
            self.keys, self.buffer, self.stride = keys, array("f"), 1
        self.seen += 1
        if self.seen % self.stride:
            return
        self.buffer.extend(zs[k] for k in keys)
        n = len(keys)
        if len(self.buffer) >= _MAX_BUFFER * n:
            every_other = np.frombuffer(self.buffer, dtype=np.float32).reshape(-1, n)[::2]
            self.buffer = array("f", every_other.tobytes())
            self.stride *= 2

    def fit(self) -> bool:
        """Fit once the learning period is over; True if a model now exists."""
        if self.fitted:
            return True
        n = len(self.keys)
        if not n or len(self.buffer) < MIN_FIT * n:
            return False
        x = np.frombuffer(self.buffer, dtype=np.float32).astype(float).reshape(-1, n)
        self.buffer = array("f")
        try:
            with warnings.catch_warnings():
                # A metric that hardly moves (a flow at rest) makes the covariance singular;
                # the ridge below handles it, the warning would only be noise in the logs.
                warnings.simplefilter("ignore", UserWarning)
                mcd = MinCovDet(random_state=0, support_fraction=0.75).fit(x)
        except ValueError:
            return False
        precision = np.linalg.pinv(mcd.covariance_ + 1e-3 * np.eye(x.shape[1]))
        self.mean = [float(v) for v in mcd.location_]
        self.precision = [[float(v) for v in row] for row in precision]
        d = np.sqrt(
            np.maximum(
                0.0, np.einsum("ij,jk,ik->i", x - mcd.location_, precision, x - mcd.location_)
            )
        )
        self.median = float(np.median(d))
        self.spread = max(_MIN_SPREAD, 1.4826 * float(np.median(np.abs(d - self.median))))
        return True

    def score(self, zs: dict[str, float], dt: float, smoothing_s: float) -> float | None:
        """Smoothed anomaly in the device's own healthy units; None without a fit or a full
        vector."""
        if not self.mean:
            return None
        try:
            diff = [zs[k] - m for k, m in zip(self.keys, self.mean, strict=True)]
        except KeyError:
            return None
        # Plain loops: a 5×5 quadratic form is cheaper here than numpy's call overhead.
        q = 0.0
        for d_i, row in zip(diff, self.precision, strict=True):
            acc = 0.0
            for p_ij, d_j in zip(row, diff, strict=True):
                acc += p_ij * d_j
            q += d_i * acc
        raw = (math.sqrt(max(0.0, q)) - self.median) / self.spread
        raw = max(-_MAX_SCORE, min(_MAX_SCORE, raw))
        self.smoothed += decay(dt, smoothing_s) * (raw - self.smoothed)
        return self.smoothed

    def latest(self, zs: dict[str, float]) -> float | None:
        """The last smoothed score, for a message that is not scored itself (None, like
        :meth:`score`, without a fit or a full vector)."""
        if not self.mean:
            return None
        for k in self.keys:
            if k not in zs:
                return None
        return self.smoothed

    def reset(self) -> None:
        """Behaviour from now on is healthy: drop the fit and learn the relationships again."""
        self.__init__()  # type: ignore[misc]

    def to_state(self) -> list[Any] | None:
        if not self.mean:
            return None
        n = len(self.mean)
        upper = [_r(self.precision[i][j]) for i in range(n) for j in range(i, n)]
        return [
            list(self.keys),
            [_r(v) for v in self.mean],
            upper,
            _r(self.median),
            _r(self.spread),
            _r(self.smoothed),
        ]

    def load_state(self, state: list[Any] | None) -> None:
        if not state:
            return
        keys, mean, upper, median, spread, smoothed = state
        n = len(mean)
        self.keys = tuple(str(k) for k in keys)
        self.mean = [float(v) for v in mean]
        self.precision = [[0.0] * n for _ in range(n)]
        it = iter(upper)
        for i in range(n):
            for j in range(i, n):
                self.precision[i][j] = self.precision[j][i] = float(next(it))
        self.median, self.spread, self.smoothed = float(median), float(spread), float(smoothed)


def _r(x: float) -> float:
    return float(f"{x:.4g}")
