"""Everything detection remembers about one device, and how it turns a message into signals."""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, NamedTuple

from monitor.config import DetectSettings
from monitor.detect.base import MetricSignal
from monitor.detect.context import ContextProfile, context_metric
from monitor.detect.duty_cycle import DutyCycle
from monitor.detect.history import BucketHistory
from monitor.detect.interval import MessageInterval
from monitor.detect.multivariate import SCORE_EVERY, Relationships
from monitor.detect.peers import FleetPeers
from monitor.detect.seasonal_baseline import SeasonalBaseline, decay

BUCKET_INTERVALS = 12
"""Messages per history bucket: an hour on five-minute telemetry."""
_SETTLE = 24
"""Messages before the interval (and so the bucket length) is fixed."""
_BAND_SIGMA = 3.0
_DAY_BUCKETS = 24
"""Trend is quoted per this many buckets: per day on five-minute telemetry."""
_DAY = 86400.0

Prior = Callable[[str, str], dict[str, Any] | None]
"""(model, tracker key) → a warm baseline state of a peer, for a cold start."""


@dataclass(slots=True)
class MetricTracker:
    """One metric: its learned baseline, its smoothed (sustained) deviation and its history."""

    baseline: SeasonalBaseline
    smoothed: float = 0.0
    last_ts: float = 0.0
    first_ts: float = 0.0
    history: BucketHistory = field(default_factory=BucketHistory)
    bucket: int = -1
    sums: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    """Open bucket: sum of raw deviation, sum of peer-adjusted deviation, count."""
    extra: Mapping[str, float] = field(default_factory=dict)
    """Signals derived from the history; they change only when a bucket closes."""
    failure_at: float | None = None
    prior: bool = False
    """Started from a peer's baseline: judged from the first message, not after learning."""
    context: ContextProfile = field(default_factory=ContextProfile)
    load: ContextProfile = field(default_factory=lambda: ContextProfile(_LOAD_KNOT))
    """While running: how far how hard the device works moves the metric."""


_LOAD_KNOT = 0.125
"""Load (share of full scale) between the load profile's knots."""
_AMBIENT_HALFLIFE_S = 3 * 3600.0
"""How fast the surroundings read while the device was off stop explaining it while it runs."""
_LN2 = math.log(2.0)
_SPARSE_SEASON_PRIOR = 12
"""Running samples' worth of belief that an hour of a sparse running state looks like the
others (a charger's hour a day fills each hour from a handful of session starts)."""
_RECENT_S = 24 * 3600.0
"""How long a metric's signal from the other operating state still counts."""
_STEP_Z = 8.0
"""How far beyond the smoothed deviation a reading that pulls it away from baseline counts, in
spreads (its weight then applies): a spike of 30 spreads, the first reading of a battery's
afternoon rest, moved it 5 spreads at once (a first reading after a gap weighs more) and
held it there until the next rest, 6 h on."""


class Explained(NamedTuple):
    """What the device's context explains of one metric in one message."""

    surroundings: float | None
    """The context metric's value, or None (absent, or this is the context metric)."""
    weather: float
    """What the surroundings explain."""
    load: float | None
    """The smoothed load, or None (not running, or this is the load metric)."""
    by_load: float
    """What the load explains."""
    carried: float
    """What the surroundings before the run explain."""

    @property
    def total(self) -> float:
        return self.weather + self.by_load + self.carried


_UNEXPLAINED = Explained(None, 0.0, None, 0.0, 0.0)


@lru_cache(maxsize=4096)
def _names(metric: str, state: str) -> tuple[str, str]:
    """A metric's tracker key and display name in an operating state (made once, not per
    message)."""
    return (f"{metric}|{state}", f"{metric} ({state})") if state else (metric, metric)


class DeviceState:
    """Per-device detector state: one tracker per metric and operating state."""

    __slots__ = (
        "_learning_s",
        "_load_halflife_s",
        "_oldest",
        "_prior",
        "_settings",
        "ambient",
        "anomaly",
        "bucket_s",
        "context",
        "current",
        "duty",
        "extra",
        "failure_at",
        "group",
        "interval",
        "joint",
        "kin",
        "load",
        "load_ts",
        "model",
        "recent",
        "trackers",
    )

    def __init__(
        self, model: str, settings: DetectSettings, prior: Prior | None = None, group: str = ""
    ) -> None:
        self.model = model
        self.group = group or model
        """Whom the device is compared with and borrows a cold-start prior from: its model."""
        self.kin = ""
        """Whom it is compared with when too few of its model are around: the devices that
        report the same metrics (set by the detect stage when the device names its model)."""
        self._settings = settings
        self._learning_s = settings.learning_hours * 3600.0
        self._prior = prior
        self.trackers: dict[str, MetricTracker] = {}
        self.duty = DutyCycle(decide_after=settings.warmup_samples)
        self._load_halflife_s = settings.load_halflife_minutes * 60.0
        self.load = 0.0
        """The duty metric's share of full scale, smoothed like a thermal lag: what a
        running device's temperatures answer to (a connector heats over minutes)."""
        self.load_ts = 0.0
        self.ambient: dict[str, tuple[float, float, float, float, float]] = {}
        """Per metric, its last three residuals while the device was off, when, and what its
        idle peers shared then: the surroundings (a warm evening) that carry over into the
        running state."""
        self.interval = MessageInterval()
        self.bucket_s = 0.0
        self.context: str | None = None
        """The metric describing the device's surroundings ("" if none), once seen."""
        self.extra: dict[str, float] = {}
        """Device-level signals: the most urgent metric's forecast."""
        self.failure_at: float | None = None
        self.joint: dict[str, Relationships] = {}
        """The relationships between metrics, per operating state."""
        self.anomaly: float | None = None
        """This message's multivariate anomaly, once the relationships are fitted."""
        self.recent: dict[str, tuple[float, MetricSignal]] = {}
        """Latest signal of every metric in every state, by display name, with its time."""
        self.current: dict[str, MetricSignal] = {}
        """The signals ``observe`` returns: ``recent`` without those older than a day."""
        self._oldest = -math.inf
        """No signal in ``current`` is older than this (a lower bound, tightened on pruning)."""

    def observe(
        self, device_id: str, ts: float, metrics: dict[str, float], peers: FleetPeers
    ) -> dict[str, MetricSignal]:
        """Score every metric of one message, then learn from the ones that look healthy.

        Returns the device's current signals: this message's, plus the latest of each metric
        in the device's other operating state (a pump's vibration while running is still the
        news while the pump is off), named ``"metric (state)"`` on devices with a duty cycle.
        """
        s = self._settings
        state, smoothing_s, learning_s = self._pace(ts, metrics)
        zs: dict[str, float] = {}
        learning = True
        ctx_name, ctx = self._context(metrics)
        trackers, recent, current = self.trackers, self.recent, self.current
        load_metric = self._load_metric()
        running = load_metric if state == "on" else None
        load = self.load
        smoothing_cap = smoothing_s / 4.0
        hold_z = s.hold_z
        for name, value in metrics.items():
            key, shown = _names(name, state)
            tracker = trackers.get(key)
            if tracker is None:
                tracker = trackers[key] = self._new_tracker(key, ts)
            baseline = tracker.baseline
            # The context metric is not explained by itself, nor the load metric by the load.
            why = self._explain(
                tracker,
                name,
                ts,
                None if name == ctx_name else ctx,
                load if running is not None and name != running else None,
                peers=peers,
            )
            total = why.total
            z = baseline.score_one(value - total, ts)
            warm = baseline.warm
            if warm:
                zs[name] = z
            # After a gap the first sample is still one sample: it must not set the level alone.
            dt = ts - tracker.last_ts
            smoothed = _smooth(
                tracker.smoothed,
                z,
                decay(dt if dt < smoothing_cap else smoothing_cap, smoothing_s),
            )
            tracker.smoothed = smoothed
            tracker.last_ts = ts
            deviation = steady = 0.0
            learning = ts - tracker.first_ts < learning_s
            # The surroundings are context, not health: a cold week is not the device's fault.
            if warm and (tracker.prior or not learning) and name != ctx_name:
                deviation = peers.adjust(
                    self.group,
                    key,
                    device_id,
                    smoothed,
                    ts,
                    scale=baseline.floor_scale(),
                    kin=self.kin,
                )
                # Calm peers magnify a deviation to catch a drift early, but whether the
                # baseline may keep learning is judged in the device's own spreads: a level
                # a spread off its calm peers' must not freeze the baseline for good.
                steady = deviation / peers.gain
                if self.bucket_s:
                    sums = tracker.sums
                    if int(ts // self.bucket_s) != tracker.bucket:
                        self._close_bucket(tracker, ts)
                    sums[0] += z
                    sums[1] += deviation
                    sums[2] += 1.0
                signal = MetricSignal(
                    value, baseline.expected(ts) + total, deviation, tracker.extra, at=ts
                )
                recent[shown] = (ts, signal)
                current[shown] = signal
            # Hold the baseline while the metric is far off, or drifting steadily away: a slow
            # fault must not become normal. Not while still learning, though: the first days
            # must see every operating state.
            if learning or (-hold_z < steady < hold_z and tracker.failure_at is None):
                self._learn(tracker, value, ts, why)
            if state == "off" and warm and load_metric is not None:
                # Against the smooth daily cycle, as _carried reads it back.
                self._remember_ambient(
                    name,
                    value - total - baseline.level - baseline.daily_smooth(ts),
                    ts,
                    peers.shared(self.group, key),
                )
        self.anomaly = self._relationships(state, zs, learning, smoothing_s, ts)
        if ts - self._oldest > _RECENT_S:
            self._forget_stale(ts)
        return dict(current)

    def _pace(self, ts: float, metrics: dict[str, float]) -> tuple[str, float, float]:
        """Follow the device's message interval and operating state: (state, smoothing
        half-life, learning period), both durations in event-time seconds."""
        s = self._settings
        self.interval.observe(ts)
        interval = self.interval.seconds
        if not self.bucket_s and self.interval.n >= _SETTLE:
            self.bucket_s = BUCKET_INTERVALS * interval
        undecided = not self.duty.decided
        state = self.duty.observe(metrics)
        if self.duty.metric is not None:
            alpha = decay(ts - self.load_ts, self._load_halflife_s) if self.load_ts else 1.0
            self.load += alpha * (self.duty.fraction - self.load)
            self.load_ts = ts
        if (undecided and self.duty.metric is not None) or self.duty.rescaled:
            # Baselines learned before the on/off metric was known mixed both states, and
            # those learned on a split of idle noise mean nothing: restart.
            self.duty.rescaled = False
            self.trackers.clear()
            self.ambient.clear()
            self._forget_recent()
        return (
            state,
            s.smoothing_samples * interval,
            min(self._learning_s, s.learning_samples * interval),
        )

    def _load_metric(self) -> str | None:
        """The metric whose load explains the device's other metrics while it runs: its duty
        metric, unless the device reports its surroundings. Then the weather drives the load
        too (a heat pump works harder in a cold snap), and learning both from each other's
        residual double-counts the weather."""
        return None if self.context else self.duty.metric

    def _explain(
        self,
        tracker: MetricTracker,
        name: str,
        ts: float,
        surroundings: float | None,
        load: float | None,
        *,
        peers: FleetPeers,
    ) -> Explained:
        """What the context explains of this metric now."""
        if surroundings is None and load is None:
            return _UNEXPLAINED  # most metrics of most messages: nothing to allocate
        weather = tracker.context.predict(surroundings) if surroundings is not None else 0.0
        if load is None:
            return Explained(surroundings, weather, None, 0.0, 0.0)
        by_load = tracker.load.predict(load)
        return Explained(surroundings, weather, load, by_load, self._carried(name, ts, peers))

    def _learn(self, tracker: MetricTracker, value: float, ts: float, why: Explained) -> None:
        """Fold a healthy-looking value into the baseline and the context profiles."""
        baseline = tracker.baseline
        if baseline.n and (why.surroundings is not None or why.load is not None):
            weight = decay(ts - baseline.last_ts, self._settings.baseline_halflife_hours * 3600.0)
            rest = value - why.carried - baseline.level
            # Backfitting: each profile learns what the other leaves unexplained.
            if why.surroundings is not None:
                tracker.context.learn(rest - why.by_load, why.surroundings, weight)
            if why.load is not None:
                tracker.load.learn(rest - why.weather, why.load, weight)
        baseline.learn_one(value - why.total, ts)

    def _carried(self, name: str, ts: float, peers: FleetPeers) -> float:
        """What the surroundings explain while running: on a device that is mostly off, its
        off state's daily cycle at this hour, plus the metric's offset while the device was last
        off: a connector that stood 4 °C warmer than usual before the car came is expected
        4 °C warmer while charging. Of that offset, what its idle peers shared follows them
        (the end of a cold snap warms every idle charger during this one's session); the
        device's own part fades with time."""
        usual = 0.0
        off_key = _names(name, "off")[0]
        if self.duty.mostly_off():
            # The surroundings' daily cycle, from the state that sees most hours of most days:
            # a charger's running hours are a handful of sessions, each on its own day's
            # weather. (A battery is the other way round: its off state is the sparse one.)
            # The cycle only, not the off state's level: the running level is the running
            # state's own, and it would jump when the off state's baseline warms up.
            off = self.trackers.get(off_key)
            usual = off.baseline.daily_smooth(ts) if off is not None else 0.0
        seen = self.ambient.get(name)
        if seen is None:
            return usual
        a, b, c, at, then = seen
        # The median of the last three: one spike while off must not follow the device into
        # its next run.
        residual = sorted((a, b, c))[1]
        now = peers.shared(self.group, off_key)
        shared = 0.0
        if not (math.isnan(now) or math.isnan(then)):
            residual -= then
            shared = now
        return usual + shared + residual * math.exp(-_LN2 * (ts - at) / _AMBIENT_HALFLIFE_S)

    def _remember_ambient(self, name: str, residual: float, ts: float, shared: float) -> None:
        seen = self.ambient.get(name)
        self.ambient[name] = (
            (residual, residual, residual, ts, shared)
            if seen is None
            else (seen[1], seen[2], residual, ts, shared)
        )

    def _forget_recent(self) -> None:
        self.recent.clear()
        self.current = {}
        self._oldest = -math.inf

    def _forget_stale(self, ts: float) -> None:
        """Drop signals older than a day from the current view (they stay in ``recent``)."""
        self.current = {
            shown: signal for shown, (seen, signal) in self.recent.items() if ts - seen <= _RECENT_S
        }
        self._oldest = min((seen for seen, _ in self.recent.values()), default=ts)

    def _context(self, metrics: dict[str, float]) -> tuple[str, float | None]:
        """The context metric's name and its value in this message (None if absent)."""
        if self.context is None:
            self.context = context_metric(list(metrics))
        name = self.context
        return name, metrics.get(name) if name else None

    def _relationships(
        self, state: str, zs: dict[str, float], learning: bool, smoothing_s: float, ts: float
    ) -> float | None:
        if not zs:
            return None
        joint = self.joint.get(state)
        if joint is None:
            joint = self.joint[state] = Relationships()
        if learning:
            joint.collect(zs)
            return None
        if not joint.fit():
            return None
        interval = self.interval.seconds
        if int(ts // interval) % SCORE_EVERY:
            return joint.latest(zs)
        return joint.score(zs, SCORE_EVERY * interval, smoothing_s)

    def _forecast(self) -> None:
        # Device-level: the most urgent metric's forecast (a rule on the device asks "will
        # anything fail soon", which the largest-over-metrics rule of per-metric signals
        # would answer with the least urgent one).
        urgent = min(
            (t for t in self.trackers.values() if t.failure_at is not None),
            key=lambda t: t.failure_at or 0.0,
            default=None,
        )
        if urgent is None:
            self.failure_at, self.extra = None, {}
            return
        self.failure_at = urgent.failure_at
        self.extra = {k: v for k, v in urgent.extra.items() if k.startswith("days_to_failure")}

    def _close_bucket(self, tracker: MetricTracker, ts: float) -> None:
        """``ts`` starts a new bucket: close the open one (if it has samples) and reopen."""
        sums = tracker.sums
        if sums[2] > 0:
            tracker.history.close(tracker.bucket, sums[0] / sums[2], sums[1] / sums[2])
            self._derive(tracker, ts)
        tracker.bucket = int(ts // self.bucket_s)
        sums[0] = sums[1] = sums[2] = 0.0

    def _derive(self, tracker: MetricTracker, ts: float) -> None:
        h = tracker.history
        extra = {
            "trend": h.trend * _DAY_BUCKETS,
            "change": h.change,
            "sustained": abs(h.sustained),
        }
        forecast = h.buckets_to(self._settings.failure_sigma)
        tracker.failure_at = None
        if forecast is not None:
            mid, early, late = (b * self.bucket_s / _DAY for b in forecast)
            extra["days_to_failure"] = mid
            extra["days_to_failure_low"] = early
            extra["days_to_failure_high"] = late
            tracker.failure_at = ts + mid * _DAY
        tracker.extra = extra
        self._forecast()

    def accept_as_normal(self) -> None:
        """The device's current behaviour is healthy: re-centre every baseline on it, forget
        the held deviation and the trend, and learn freely for a new learning period."""
        for tracker in self.trackers.values():
            b = tracker.baseline
            recent = tracker.history.z[-3:]
            if recent and b.n:
                # The last buckets' mean residual is the offset the baseline had refused.
                b.level += sum(recent) / len(recent) / 10.0 * b.scale
        self.relearn()

    def relearn(self) -> None:
        """Forget the held deviation and the trend, and learn freely for a new learning
        period from where the baselines are (a repaired device)."""
        for tracker in self.trackers.values():
            tracker.smoothed = 0.0
            tracker.history.reset()
            tracker.sums[0] = tracker.sums[1] = tracker.sums[2] = 0.0
            tracker.extra = {}
            tracker.failure_at = None
            tracker.first_ts = tracker.last_ts
            tracker.prior = False
        self._forget_recent()
        self.joint.clear()
        self.anomaly = None
        self._forecast()

    def evidence_series(self) -> dict[str, list[list[float]]]:
        """Per metric, the kept buckets as [ts, observed mean, expected, band low, band high]."""
        out: dict[str, list[list[float]]] = {}
        if not self.bucket_s:
            return out
        for key, tracker in self.trackers.items():
            b = tracker.baseline
            sigma = b.floor_scale()
            name, _, state = key.partition("|")
            points = []
            for bucket, z in tracker.history.series():
                mid = (bucket + 0.5) * self.bucket_s
                expected = b.expected(mid)
                points.append(
                    [
                        round(bucket * self.bucket_s, 1),
                        _sig(expected + z * sigma),
                        _sig(expected),
                        _sig(expected - _BAND_SIGMA * sigma),
                        _sig(expected + _BAND_SIGMA * sigma),
                    ]
                )
            if points:
                out[f"{name} ({state})" if state else name] = points
        return out

    def _new_tracker(self, key: str, ts: float) -> MetricTracker:
        baseline = self._new_baseline(key)
        # Only a device that names its model borrows a prior: devices that merely report the
        # same metrics (separate runs of one test rig) may differ in what healthy is.
        prior = self._prior(self.group, key) if self._prior and self.model else None
        if prior is not None:
            baseline.load_state(prior)
            # Trust the prior as much as a warm-up's worth of own samples, no more: the
            # device's own data takes over at the running-mean pace.
            baseline.n = baseline.warmup
            baseline.season_n = array("l", (min(n, 2) for n in baseline.season_n))
        return MetricTracker(baseline, 0.0, ts, ts, prior=prior is not None)

    def _new_baseline(self, key: str) -> SeasonalBaseline:
        s = self._settings
        # A charger runs an hour a day: a full warm-up of running samples would take two
        # weeks. Where the load and the surroundings before the run explain a running metric
        # (a device without a weather context, see observe), half the samples tell its
        # spread as well.
        explained = key.endswith("|on") and self._load_metric() is not None
        warmup = s.warmup_samples // 2 if explained else s.warmup_samples
        return SeasonalBaseline(
            level_halflife_s=s.baseline_halflife_hours * 3600.0,
            season_halflife_s=s.season_halflife_hours * 3600.0,
            warmup=warmup,
            season_prior=_SPARSE_SEASON_PRIOR if explained else 0,
        )

    def to_state(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "g": self.group,
            "kn": self.kin,
            "duty": self.duty.to_state(),
            "iv": self.interval.to_state(),
            "bs": self.bucket_s,
            "j": {k: j.to_state() for k, j in self.joint.items() if j.fitted},
            # Only devices with a duty cycle have a load (and surroundings from while off).
            **(
                {
                    "ld": [round(self.load, 4), self.load_ts],
                    "amb": {
                        k: [*(round(r, 3) for r in v[:3]), v[3], _finite(v[4])]
                        for k, v in self.ambient.items()
                    },
                }
                if self.load_ts
                else {}
            ),
            "metrics": {
                name: {
                    "b": t.baseline.to_state(),
                    "s": round(t.smoothed, 3),
                    "t": t.last_ts,
                    "f": t.first_ts,
                    "h": t.history.to_state(),
                    "k": [t.bucket, *(round(v, 2) for v in t.sums)],
                    "p": t.prior,
                    "c": t.context.to_state(),
                    **({"l": t.load.to_state()} if t.load.values else {}),
                }
                for name, t in self.trackers.items()
            },
        }

    @classmethod
    def from_state(
        cls, state: dict[str, Any], settings: DetectSettings, prior: Prior | None = None
    ) -> DeviceState:
        device = cls(str(state["model"]), settings, prior, str(state.get("g", "")))
        # Older checkpoints have none: the detect stage sets it from the next message.
        device.kin = str(state.get("kn", ""))
        if state["metrics"]:
            # Known before the first message: it decides how long running baselines warm up.
            device.context = context_metric([k.partition("|")[0] for k in state["metrics"]])
        device.duty.load_state(state["duty"])
        if "iv" in state:  # checkpoints from before the history existed lack these
            device.interval.load_state(state["iv"])
            device.bucket_s = float(state["bs"])
            for key, saved_joint in state["j"].items():
                device.joint[key] = joint = Relationships()
                joint.load_state(saved_joint)
        if "ld" in state:
            device.load, device.load_ts = (float(v) for v in state["ld"])
            # Checkpoints from before the peers' share was kept lack it: NaN, unknown.
            device.ambient = {
                str(k): (float(v[0]), float(v[1]), float(v[2]), float(v[3]), _nan(v[4:]))
                for k, v in state["amb"].items()
            }
        for name, saved in state["metrics"].items():
            baseline = device._new_baseline(name)
            baseline.load_state(saved["b"])
            tracker = device.trackers[name] = MetricTracker(
                baseline, float(saved["s"]), float(saved["t"]), float(saved["f"])
            )
            if "h" in saved:
                tracker.history.load_state(saved["h"])
                bucket, *sums = saved["k"]
                tracker.bucket = int(bucket)
                tracker.sums = [float(v) for v in sums]
                tracker.prior = bool(saved["p"])
                tracker.context.load_state(saved["c"])
                tracker.load.load_state(saved.get("l", []))
                if tracker.history.index:
                    device._derive(tracker, tracker.last_ts)
        return device


def _finite(x: float) -> float | None:
    """NaN as JSON's null, rounded like the residuals."""
    return None if math.isnan(x) else round(x, 3)


def _nan(rest: list[Any]) -> float:
    return math.nan if not rest or rest[0] is None else float(rest[0])


def _sig(x: float) -> float:
    return float(f"{x:.5g}")


def _smooth(smoothed: float, z: float, weight: float) -> float:
    """The smoothed deviation after one reading's ``z``, of ``weight``. A reading further
    from baseline pulls it out at most :data:`_STEP_Z`; one coming back is not held back:
    held both ways, a healthy heat pump's compressor swinging to the limit and back each
    hour never came back, and read as far off all day."""
    step = z - smoothed
    if (z if z >= 0.0 else -z) > (smoothed if smoothed >= 0.0 else -smoothed):
        if step > _STEP_Z:
            step = _STEP_Z
        elif step < -_STEP_Z:
            step = -_STEP_Z
    return smoothed + weight * step
