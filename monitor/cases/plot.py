"""The evidence plot: each metric as observed, its learned baseline band, and the forecast.

Reads ``case.evidence["series"] = {metric: [[ts, observed, expected, band_low, band_high],
...]}`` and, if present, ``case.evidence["forecast"]``: one forecast or a list of them, each
``{"metric": name, "points": [[ts, value], ...], "threshold": value?, "failure_at": ts?}``.
Rendered with matplotlib's Agg canvas on a fresh Figure (no pyplot global state), so the API's
worker threads and the notifier can draw at the same time.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure

from monitor.store import Case

_MAX_METRICS = 4


class NothingToPlotError(ValueError):
    """The case's evidence holds no time series."""


def render_case_plot(case: Case) -> bytes:
    """A PNG of the case's evidence series; :class:`NothingToPlotError` if it has none."""
    series: dict[str, list[list[float]]] = case.evidence.get("series") or {}
    metrics = [name for name, rows in series.items() if rows][:_MAX_METRICS]
    if not metrics:
        raise NothingToPlotError(f"case {case.id} has no time series in its evidence")
    forecasts = _forecasts(case.evidence.get("forecast"))
    figure = Figure(figsize=(8, 2.4 * len(metrics)), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(metrics), 1, sharex=True, squeeze=False)[:, 0]
    for ax, metric in zip(axes, metrics, strict=True):
        _draw_metric(ax, metric, series[metric], forecasts.get(metric))
    axes[0].set_title(f"case {case.id}: {case.device_id} — {case.problem}", loc="left")
    locator = AutoDateLocator()  # type: ignore[no-untyped-call]
    axes[-1].xaxis.set_major_locator(locator)
    axes[-1].xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()


def _draw_metric(
    ax: Any, metric: str, rows: list[list[float]], forecast: dict[str, Any] | None
) -> None:
    times = [_when(row[0]) for row in rows]
    ax.fill_between(
        times,
        [r[3] for r in rows],
        [r[4] for r in rows],
        color="tab:blue",
        alpha=0.15,
        label="baseline band",
    )
    ax.plot(times, [r[2] for r in rows], color="tab:blue", linestyle="--", label="baseline")
    ax.plot(times, [r[1] for r in rows], color="black", linewidth=1.2, label="observed")
    if forecast:
        points = forecast.get("points") or []
        if points:
            ax.plot(
                [_when(p[0]) for p in points],
                [p[1] for p in points],
                color="tab:red",
                linestyle=":",
                label="forecast",
            )
        if forecast.get("threshold") is not None:
            ax.axhline(forecast["threshold"], color="tab:red", linewidth=0.8, label="limit")
        if forecast.get("failure_at") is not None:
            ax.axvline(_when(forecast["failure_at"]), color="tab:red", alpha=0.5)
    ax.set_ylabel(metric)
    ax.legend(loc="upper left", fontsize="small")


def _forecasts(raw: Any) -> dict[str, dict[str, Any]]:
    items = raw if isinstance(raw, list) else [raw] if isinstance(raw, dict) else []
    return {f["metric"]: f for f in items if isinstance(f, dict) and "metric" in f}


def _when(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)
