"""The SKAB protocol on the monitor's own pipeline, next to the published leaderboard.

    .venv/bin/python bench/skab.py [--data DIR] [--rules DIR]

Data: ``--data``, else ``$SKAB_DIR``, else ``/work/shared/datasets/skab`` (read in place, never
copied). Each file of ``valve1/``, ``valve2/`` and ``other/`` is one device; its first 400 rows
are the learning period and every later row gets a 0/1 prediction. All files go through one
``monitor backtest`` run (ingest, detection, shipped default rules, case dedup, exactly as the
daemon), with the ``ts`` of each row in epoch seconds. The one setting the harness writes is the
detectors' learning period, set to the span of 400 rows; rules are never changed for SKAB.

Rows become 0/1 three ways, all printed: "case open" (primary: a case is what the product
decides; 1 from a case's opened_at until its closed_at or the end of the file), "score > 0.5"
(the backtest score: the device's largest metric deviation or its multivariate anomaly,
whichever is further off, above the shipped rule's threshold of 10 standard units, i.e. the
detectors without the rule's duration) and "either". Changepoints are the rows where the 0/1
prediction changes, as the leaderboard's notebooks derive them; for "case open" these are the
cases' opened_at (and closed_at) rows, also scored alone as "NAB opened_at".

Metrics follow the SKAB project's own code (waico/SKAB ``core/metrics.py``, a copy of the
``tsad`` library's ``evaluating``/``chp_score``, and its notebooks; see :func:`binary_scores`
and :func:`nab_scores`).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import logging
import math
import os
import re
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

from monitor.backtest import BacktestResult, run_backtest
from monitor.config import DetectSettings, load_settings
from rules import load_rules

DEFAULT_DATA = Path("/work/shared/datasets/skab")
FOLDERS = ("valve1", "valve2", "other")
"""The leaderboard's 34 files; ``anomaly-free/`` has no labels and is reported apart."""
LEARN_ROWS = 400
WINDOW_S = 60.0
"""SKAB scores changepoints with ``window_width='60s'`` and
``anomaly_window_destination='righter'``."""
SCORE_THRESHOLD = 0.5
"""``monitor backtest`` maps the shipped rule's deviation threshold to a score of 0.5."""

# NAB application profiles as SKAB's chp_score defines them: (A_tp, A_fp, A_fn).
PROFILES: dict[str, tuple[float, float, float]] = {
    "standard": (1.0, -0.11, -1.0),
    "low_fp": (1.0, -0.22, -1.0),
    "low_fn": (1.0, -0.11, -2.0),
}
_SCALE_STEPS = 1000

Flags = npt.NDArray[np.int8]
Times = npt.NDArray[np.float64]


class SkabDataError(Exception):
    """The SKAB folder or one of its files cannot be used; the message says which and why."""


@dataclass(frozen=True, slots=True)
class SkabFile:
    device_id: str
    ts: Times
    metrics: dict[str, npt.NDArray[np.float64]]
    anomaly: Flags
    changepoint: Flags

    def __len__(self) -> int:
        return len(self.ts)


# --- reading -------------------------------------------------------------------------------


def load_file(path: Path, device_id: str) -> SkabFile:
    """One SKAB CSV (``;``-separated, naive ``datetime`` taken as UTC)."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle, delimiter=";")
        columns = reader.fieldnames or []
        missing = {"datetime", "anomaly", "changepoint"} - set(columns)
        if missing:
            raise SkabDataError(
                f"{path}: no column(s) {sorted(missing)}. Fix: pass a SKAB data folder."
            )
        names = [c for c in columns if c not in ("datetime", "anomaly", "changepoint")]
        rows = list(reader)
    try:
        ts = np.array([_epoch(r["datetime"]) for r in rows])
        metrics = {n: np.array([float(r[n]) for r in rows]) for n in names}
        anomaly = np.array([int(float(r["anomaly"])) for r in rows], dtype=np.int8)
        changepoint = np.array([int(float(r["changepoint"])) for r in rows], dtype=np.int8)
    except (ValueError, TypeError) as exc:
        raise SkabDataError(f"{path}: unreadable value ({exc}).") from exc
    if len(ts) <= LEARN_ROWS or np.any(np.diff(ts) <= 0):
        raise SkabDataError(f"{path}: needs more than {LEARN_ROWS} rows with increasing datetimes.")
    return SkabFile(device_id, ts, metrics, anomaly, changepoint)


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def discover(data: Path) -> list[tuple[Path, str]]:
    """The leaderboard's files, each with a device id (``valve1-3``: topics have no ``/``)."""
    found = [
        (path, f"{folder}-{path.stem}")
        for folder in FOLDERS
        for path in sorted((data / folder).glob("*.csv"), key=_natural)
    ]
    if not found:
        raise SkabDataError(
            f"{data}: no SKAB files in {', '.join(FOLDERS)}. "
            "Fix: pass --data DIR or set SKAB_DIR to the SKAB data folder."
        )
    return found


def _natural(path: Path) -> tuple[int, str]:
    return (int(path.stem), "") if path.stem.isdigit() else (1 << 30, path.stem)


def learning_seconds(files: Iterable[SkabFile]) -> float:
    """The learning period, in event time, that ends at or before row 400 in every file.

    SKAB is nominally 1 Hz but has gaps, so 400 rows span a little more than 400 s; the
    shortest span keeps every scored row out of the learning period.
    """
    return min(float(f.ts[LEARN_ROWS] - f.ts[0]) for f in files)


# --- running the monitor -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MonitorOutput:
    cases: dict[str, list[tuple[float, float]]]
    """Per device: (opened_at, closed_at or +inf) of every case opened."""
    scores: dict[str, npt.NDArray[np.float64]]
    """Per device: the backtest score after each of its rows (0 where a row was refused)."""
    result: BacktestResult
    learning_hours: float | None
    """The learning period the harness configured, or None if the setting does not exist."""


def write_telemetry(files: Sequence[SkabFile], path: Path) -> list[tuple[str, int]]:
    """The backtest's wide CSV, all devices interleaved in time order; returns the row order."""
    names = sorted({n for f in files for n in f.metrics})
    order = sorted(
        ((float(f.ts[i]), f.device_id, i) for f in files for i in range(len(f))),
    )
    by_id = {f.device_id: f for f in files}
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["device_id", "ts", *names])
        for ts, device_id, i in order:
            metrics = by_id[device_id].metrics
            cells = [repr(float(metrics[n][i])) if n in metrics else "" for n in names]
            writer.writerow([device_id, f"{ts:.0f}", *cells])
    return [(device_id, i) for _, device_id, i in order]


def run_monitor(files: Sequence[SkabFile], rules_dir: Path | None, workdir: Path) -> MonitorOutput:
    telemetry = workdir / "skab-telemetry.csv"
    order = write_telemetry(files, telemetry)
    config = workdir / "skab.toml"
    learning_hours: float | None = None
    lines = ["[database]", f'url = "sqlite:///{workdir}/skab.db"']
    # Only the learning period is set, because the protocol fixes it (400 rows); a detector
    # without that setting runs with its own default, and the report says so.
    if "learning_hours" in DetectSettings.model_fields:
        learning_hours = learning_seconds(files) / 3600.0
        lines += ["[detect]", f"learning_hours = {learning_hours!r}"]
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    settings = load_settings(config)
    rules = load_rules(rules_dir if rules_dir is not None else settings.rules.dir)
    cases_csv, scores_csv = workdir / "cases.csv", workdir / "scores.csv"
    result = run_backtest(telemetry, settings, rules, cases_csv, scores_csv)

    scores = {f.device_id: np.zeros(len(f)) for f in files}
    with scores_csv.open(newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        for (device_id, i), row in zip(order, reader, strict=True):
            scores[device_id][i] = float(row[2])
    cases: dict[str, list[tuple[float, float]]] = {f.device_id: [] for f in files}
    with cases_csv.open(newline="") as handle:
        for case in csv.DictReader(handle):
            closed = float(case["closed_at"]) if case["closed_at"] else math.inf
            cases.setdefault(case["device_id"], []).append((float(case["opened_at"]), closed))
    return MonitorOutput(cases, scores, result, learning_hours)


# --- mapping the monitor's output to the protocol ------------------------------------------

MAPPINGS = ("case open", "score > 0.5", "either")
"""How rows become 0/1. The primary one is "case open": a case is what the product says to
the customer; "score > 0.5" shows the detector alone, before the rule's duration; "either"
is their union."""


def case_flags(ts: Times, cases: Sequence[tuple[float, float]]) -> Flags:
    """1 where a case of the device is open: opened_at ≤ ts < closed_at (or to the end)."""
    flags = np.zeros(len(ts), dtype=np.int8)
    for opened, closed in cases:
        flags[(ts >= opened) & (ts < closed)] = 1
    return flags


def predict(file: SkabFile, out: MonitorOutput, mapping: str) -> Flags:
    """0/1 for each row after the learning period."""
    by_case = case_flags(file.ts, out.cases.get(file.device_id, []))
    by_score = (out.scores[file.device_id] > SCORE_THRESHOLD).astype(np.int8)
    flags = {"case open": by_case, "score > 0.5": by_score, "either": by_case | by_score}
    return flags[mapping][LEARN_ROWS:]


def changepoints(prediction: Flags) -> Flags:
    """SKAB's predicted changepoints: every row where the 0/1 prediction changes, and the first
    row if it is 1 (the notebooks' ``abs(prediction.diff())`` with ``[0] = prediction[0]``)."""
    if len(prediction) == 0:
        return prediction.copy()
    return np.concatenate(([prediction[0]], np.abs(np.diff(prediction)))).astype(np.int8)


def onsets(prediction: Flags) -> Flags:
    """Only the rows where the prediction turns on: a case's opened_at."""
    if len(prediction) == 0:
        return prediction.copy()
    return np.concatenate(([prediction[0]], np.diff(prediction) == 1)).astype(np.int8)


# --- SKAB metrics --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Binary:
    f1: float
    far: float
    """False alarm rate, %: FP / (FP + TN)."""
    mar: float
    """Missing alarm rate, %: FN / (FN + TP)."""


def binary_scores(true: Sequence[Flags], predicted: Sequence[Flags]) -> Binary:
    """Point-wise F1, FAR and MAR pooled over files.

    As ``chp_score(metric='binary')`` in waico/SKAB core/metrics.py (from the tsad library):
    counts summed over files, F1 = TP / (TP + (FN + FP) / 2), FAR and MAR in %, rounded to 2.
    """
    tp = tn = fp = fn = 0
    for t, p in zip(true, predicted, strict=True):
        t_, p_ = t == 1, p == 1
        tp += int(np.sum(t_ & p_))
        tn += int(np.sum(~t_ & ~p_))
        fp += int(np.sum(~t_ & p_))
        fn += int(np.sum(t_ & ~p_))
    return Binary(
        round(_ratio(tp, tp + (fn + fp) / 2), 2),
        round(100 * _ratio(fp, fp + tn), 2),
        round(100 * _ratio(fn, fn + tp), 2),
    )


def _ratio(num: float, den: float) -> float:
    return num / den if den else math.nan


def detection_windows(ts: Times, changepoint: Flags, width: float = WINDOW_S) -> list[list[float]]:
    """[t, t + width] right of each true changepoint; overlaps resolved as SKAB's default
    ``intersection_mode='cut right window'`` (the later window starts where the earlier ends)."""
    windows = [[float(t), float(t) + width] for t in ts[changepoint == 1]]
    for left, right in itertools.pairwise(windows):
        if left[1] >= right[0]:
            right[0] = left[1]
    return windows


def nab_counts(
    windows: Sequence[Sequence[float]], detected: Sequence[float]
) -> tuple[list[float], int, int]:
    """(relative position of the first detection in each hit window, FP count, FN count).

    As ``extract_cp_confusion_matrix(point=0)``: detections before the first window, strictly
    between windows or after the last are false positives; a window (ends included) without a
    detection is a false negative; only the first detection in a window counts.
    """
    times = np.sort(np.asarray(detected, dtype=np.float64))
    if not windows:
        return [], len(times), 0
    fp = int(np.sum(times < windows[0][0]))
    fn = 0
    positions: list[float] = []
    for i, (start, end) in enumerate(windows):
        inside = times[(times >= start) & (times <= end)]
        if len(inside) == 0:
            fn += 1
        else:
            positions.append(float((inside[0] - start) / (end - start)) if end > start else 0.0)
        upper = windows[i + 1][0] if i + 1 < len(windows) else math.inf
        fp += int(np.sum((times > end) & (times < upper)))
    return positions, fp, fn


def nab_scale(position: float, a_tp: float, a_fp: float) -> float:
    """SKAB's "improved" NAB scoring function (``my_scale``, koef=1, 1000 steps): A_tp at the
    window's start, falling along a tanh to A_fp at its end."""
    x = -math.pi / 2 + math.pi * min(int(position * _SCALE_STEPS), _SCALE_STEPS - 1) / (
        _SCALE_STEPS - 1
    )
    half = (a_tp - a_fp) / 2
    return half * -math.tanh(x) / math.tanh(math.pi / 2) + half + a_fp


def nab_scores(
    files: Sequence[tuple[Times, Flags, Flags]], width: float = WINDOW_S
) -> dict[str, float]:
    """NAB changepoint score per profile over (ts, true changepoints, predicted changepoints).

    As ``chp_score(metric='nab', window_width='60s', anomaly_window_destination='righter')`` in
    waico/SKAB core/metrics.py: per profile, S = Σ scale(TP) + A_fp·FP + A_fn·FN summed over
    files, then 100·(S − S_null) / (S_perfect − S_null) with S_null = A_fn·windows and
    S_perfect = A_tp·windows, rounded to 2.
    """
    total = dict.fromkeys(PROFILES, 0.0)
    n_windows = 0
    for ts, true_cp, predicted_cp in files:
        windows = detection_windows(ts, true_cp, width)
        n_windows += len(windows)
        positions, fp, fn = nab_counts(windows, ts[predicted_cp == 1].tolist())
        for name, (a_tp, a_fp, a_fn) in PROFILES.items():
            total[name] += sum(nab_scale(p, a_tp, a_fp) for p in positions)
            total[name] += a_fp * fp + a_fn * fn
    scores: dict[str, float] = {}
    for name, (a_tp, _, a_fn) in PROFILES.items():
        null, perfect = a_fn * n_windows, a_tp * n_windows
        scores[name] = round(100 * _ratio(total[name] - null, perfect - null), 2)
    return scores


# --- the published board -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BoardRow:
    method: str
    f1: str
    far: str
    mar: str
    nab: str


def leaderboard(readme: Path) -> list[BoardRow]:
    """The results table of the dataset folder's README (empty if there is none)."""
    if not readme.is_file():
        return []
    rows: list[BoardRow] = []
    for line in readme.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 5 or cells[0] == "method" or set(cells[1]) <= set("-: "):
            continue
        rows.append(BoardRow(*(re.sub(r"\s+", " ", c) for c in cells)))
    return rows


# --- report --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Evaluation:
    mapping: str
    binary: Binary
    nab: dict[str, float]
    nab_onsets: dict[str, float]


def evaluate(files: Sequence[SkabFile], out: MonitorOutput, mapping: str) -> Evaluation:
    predicted = [predict(f, out, mapping) for f in files]
    return evaluate_prediction(files, predicted, mapping)


def evaluate_prediction(
    files: Sequence[SkabFile], predicted: Sequence[Flags], mapping: str = ""
) -> Evaluation:
    """All SKAB scores of 0/1 predictions for the rows after the learning period."""
    true, cp, cp_onsets = [], [], []
    for f, p in zip(files, predicted, strict=True):
        ts, true_cp = f.ts[LEARN_ROWS:], f.changepoint[LEARN_ROWS:]
        true.append(f.anomaly[LEARN_ROWS:])
        cp.append((ts, true_cp, changepoints(p)))
        cp_onsets.append((ts, true_cp, onsets(p)))
    return Evaluation(
        mapping, binary_scores(true, predicted), nab_scores(cp), nab_scores(cp_onsets)
    )


def meets_target(e: Evaluation) -> bool:
    return e.binary.f1 >= 0.80 and e.binary.far <= 13.0 and e.nab["standard"] > 32.4


def _open_from_onset(file: SkabFile) -> Flags:
    labels = file.anomaly[LEARN_ROWS:]
    flags = np.zeros_like(labels)
    if labels.any():
        flags[int(np.argmax(labels == 1)) :] = 1
    return flags


def _nab_text(nab: dict[str, float]) -> str:
    return " / ".join(f"{nab[p]:.2f}" for p in PROFILES)


def report(
    evaluations: Sequence[Evaluation],
    board: Sequence[BoardRow],
    files: Sequence[SkabFile],
    out: MonitorOutput,
    free_share: float | None,
) -> None:
    n_rows = sum(len(f) - LEARN_ROWS for f in files)
    n_cp = sum(int(f.changepoint[LEARN_ROWS:].sum()) for f in files)
    cases = sum(len(v) for v in out.cases.values())
    print(
        f"{len(files)} files, {n_rows:,} scored rows, {n_cp} true changepoints; "
        f"{cases} cases opened on {sum(1 for v in out.cases.values() if v)} devices"
    )
    print(
        "changepoint score: NAB standard / low FP / low FN, 60 s window right of each true "
        "changepoint; 'cp' = rows where the 0/1 prediction changes (as the leaderboard), "
        "'opened_at' = only the rows where it turns on"
    )
    print(f"primary mapping: '{MAPPINGS[0]}' (a row is 1 while a case of its device is open)\n")
    print(
        f"{'method':28}{'F1':>6}{'FAR %':>8}{'MAR %':>8}   {'NAB cp':25}{'NAB opened_at':25}target"
    )
    for e in evaluations:
        name = f"monitor: {e.mapping}" + (" *" if e.mapping == MAPPINGS[0] else "")
        b = e.binary
        print(
            f"{name:28}{b.f1:6.2f}{b.far:8.2f}{b.mar:8.2f}   "
            f"{_nab_text(e.nab):25}{_nab_text(e.nab_onsets):25}"
            f"{'met' if meets_target(e) else 'not met'}"
        )
    if board:
        print("published (dataset README):")
        for row in board:
            print(f"  {row.method:26}{row.f1:>6}{row.far:>8}{row.mar:>8}   {row.nab}")
    reference = evaluate_prediction(files, [f.anomaly[LEARN_ROWS:] for f in files])
    print(
        f"  {'(labels as prediction)':26}{reference.binary.f1:6.2f}{reference.binary.far:8.2f}"
        f"{reference.binary.mar:8.2f}   {_nab_text(reference.nab)}  <- the labels themselves: "
        "some true changepoints lie inside anomalies, where a 0/1 prediction does not change"
    )
    latch = evaluate_prediction(files, [_open_from_onset(f) for f in files])
    print(
        f"  {'(case at true onset, open)':26}{latch.binary.f1:6.2f}{latch.binary.far:8.2f}"
        f"{latch.binary.mar:8.2f}   {_nab_text(latch.nab)}  <- a case opened at each true onset: "
        "cases in the backtest stay open, so rows after an anomaly count as false alarms"
    )
    print(f"\nper folder, mapping '{MAPPINGS[0]}':")
    for folder in FOLDERS:
        part = [f for f in files if f.device_id.startswith(f"{folder}-")]
        if part:
            b = evaluate(part, out, MAPPINGS[0]).binary
            print(f"  {folder:26}{b.f1:6.2f}{b.far:8.2f}{b.mar:8.2f}   ({len(part)} files)")
    print(
        f"\ntarget (issue 4): F1 ≥ 0.80 with FAR ≤ 13 %, NAB standard > 32.4: "
        f"{'met' if meets_target(evaluations[0]) else 'NOT met'} (mapping '{MAPPINGS[0]}')"
    )
    print(score_diagnosis(files, out))
    if free_share is not None:
        print(f"anomaly-free/anomaly-free.csv: {free_share:.2%} of rows after row 400 flagged")
    learning = (
        f"detect.learning_hours = {out.learning_hours:.4f} ({out.learning_hours * 3600:.0f} s)"
        if out.learning_hours is not None
        else "no detect.learning_hours setting: the detectors' own default learning period"
    )
    r = out.result
    print(
        f"config written by the harness: {learning}; everything else default, shipped rules\n"
        f"backtest: {r.rows:,} rows ({r.rejected} refused) in {r.seconds:.1f} s "
        f"({r.rows / r.seconds * 60:,.0f} rows/min)"
    )


def score_diagnosis(files: Sequence[SkabFile], out: MonitorOutput) -> str:
    """How well the backtest score alone separates the labels, whatever the threshold.

    For diagnosis only (an oracle picks the threshold on the answers): it tells whether the
    detector's signal is there and the rule/threshold misses it, or the signal itself is not.
    """
    true = np.concatenate([f.anomaly[LEARN_ROWS:] for f in files])
    score = np.concatenate([out.scores[f.device_id][LEARN_ROWS:] for f in files])
    if true.min() == true.max():
        return "score diagnosis: needs both labels"
    # ROC AUC as the Mann-Whitney rank statistic (ties get their average rank).
    ranks = _average_ranks(score)
    positives = int(true.sum())
    negatives = len(true) - positives
    auc = (ranks[true == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives)
    best = max(
        (
            (binary_scores([true], [(score > t).astype(np.int8)]), float(t))
            for t in np.unique(np.quantile(score, np.linspace(0.0, 0.995, 200)))
        ),
        key=lambda candidate: -1.0 if math.isnan(candidate[0].f1) else candidate[0].f1,
    )
    return (
        f"score diagnosis (oracle, not a result): ROC AUC {auc:.3f}; best threshold "
        f"score > {best[1]:.4f} gives F1 {best[0].f1:.2f}, FAR {best[0].far:.2f} %, "
        f"MAR {best[0].mar:.2f} %; max score after row 400: {score.max():.3f}"
    )


def _average_ranks(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return np.asarray(sums[inverse] / counts[inverse], dtype=np.float64)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data", type=Path, default=Path(os.environ.get("SKAB_DIR", str(DEFAULT_DATA)))
    )
    parser.add_argument(
        "--rules", type=Path, default=None, help="rules folder (default: the shipped rules)"
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    logging.getLogger("monitor").setLevel(logging.ERROR)
    if not args.data.is_dir():
        print(f"SKAB data not found at {args.data}: skipped. Fix: --data DIR or SKAB_DIR.")
        return 0
    files = [load_file(path, device_id) for path, device_id in discover(args.data)]
    free_path = args.data / "anomaly-free" / "anomaly-free.csv"
    free = _anomaly_free(free_path) if free_path.is_file() else None
    with tempfile.TemporaryDirectory(prefix="monitor-skab-") as tmp:
        out = run_monitor([*files, *([free] if free else [])], args.rules, Path(tmp))
    evaluations = [evaluate(files, out, m) for m in MAPPINGS]
    free_share = float(predict(free, out, MAPPINGS[0]).mean()) if free else None
    report(evaluations, leaderboard(args.data / "README.md"), files, out, free_share)
    print(f"total run time: {time.perf_counter() - started:.1f} s")
    return 0


def _anomaly_free(path: Path) -> SkabFile:
    # This file has no label columns: every row is healthy.
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle, delimiter=";")
        names = [c for c in reader.fieldnames or [] if c != "datetime"]
        rows = list(reader)
    zeros = np.zeros(len(rows), dtype=np.int8)
    return SkabFile(
        "anomaly-free",
        np.array([_epoch(r["datetime"]) for r in rows]),
        {n: np.array([float(r[n]) for r in rows]) for n in names},
        zeros,
        zeros.copy(),
    )


if __name__ == "__main__":
    raise SystemExit(main())
