"""bench/skab.py: the SKAB metrics on hand-made answers, and the harness on a tiny SKAB folder."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import skab

SKAB_DIR = Path("/work/shared/datasets/skab")


def flags(*values: int) -> skab.Flags:
    return np.array(values, dtype=np.int8)


def test_binary_scores_pool_counts_over_files_as_skab_does() -> None:
    # File 1: TP 2, FN 1, FP 1, TN 1. File 2: TP 1, TN 3.  Pooled: TP 3, FN 1, FP 1, TN 4.
    true = [flags(1, 1, 1, 0, 0), flags(1, 0, 0, 0)]
    predicted = [flags(1, 1, 0, 1, 0), flags(1, 0, 0, 0)]
    result = skab.binary_scores(true, predicted)
    assert result == skab.Binary(f1=round(3 / (3 + 1), 2), far=20.0, mar=25.0)


def test_predicted_changepoints_are_every_change_and_a_leading_one() -> None:
    assert skab.changepoints(flags(1, 1, 0, 0, 1, 1, 0)).tolist() == [1, 0, 1, 0, 1, 0, 1]
    assert skab.onsets(flags(1, 1, 0, 0, 1, 1, 0)).tolist() == [1, 0, 0, 0, 1, 0, 0]
    assert skab.changepoints(flags(0, 0, 1)).tolist() == [0, 0, 1]


def test_overlapping_windows_cut_the_right_one() -> None:
    ts = np.arange(0.0, 200.0)
    true_cp = np.zeros(200, dtype=np.int8)
    true_cp[[10, 40, 150]] = 1
    windows = skab.detection_windows(ts, true_cp, width=60.0)
    assert windows == [[10.0, 70.0], [70.0, 100.0], [150.0, 210.0]]


def test_nab_counts_first_detection_per_window_and_strict_gaps_as_false_positives() -> None:
    windows = [[10.0, 70.0], [100.0, 160.0]]
    positions, fp, fn = skab.nab_counts(windows, [5.0, 10.0, 40.0, 70.5, 200.0])
    assert positions == [0.0]
    assert (fp, fn) == (3, 1)


def test_nab_scale_runs_from_a_tp_at_the_window_start_to_a_fp_at_its_end() -> None:
    assert skab.nab_scale(0.0, 1.0, -0.11) == pytest.approx(1.0)
    assert skab.nab_scale(1.0, 1.0, -0.11) == pytest.approx(-0.11)
    assert skab.nab_scale(0.5, 1.0, -0.11) == pytest.approx((1.0 - 0.11) / 2, abs=0.01)


def test_nab_scores_are_100_for_instant_detection_0_for_none_and_negative_for_noise() -> None:
    ts = np.arange(0.0, 300.0)
    true_cp = np.zeros(300, dtype=np.int8)
    true_cp[[50, 200]] = 1
    perfect = skab.nab_scores([(ts, true_cp, true_cp.copy())])
    nothing = skab.nab_scores([(ts, true_cp, np.zeros(300, dtype=np.int8))])
    noise = np.zeros(300, dtype=np.int8)
    noise[[0, 120, 280]] = 1
    assert perfect == {"standard": 100.0, "low_fp": 100.0, "low_fn": 100.0}
    assert nothing == {"standard": 0.0, "low_fp": 0.0, "low_fn": 0.0}
    # Two missed windows and three false positives: (2·-1 + 3·-0.11 − 2·-1) / (2 − 2·-1).
    assert skab.nab_scores([(ts, true_cp, noise)])["standard"] == round(100 * -0.33 / 4, 2)


def test_case_flags_mark_rows_from_opened_at_until_closed_at_or_the_end() -> None:
    ts = np.arange(0.0, 10.0)
    assert skab.case_flags(ts, [(2.0, 4.0), (7.0, math.inf)]).tolist() == [
        0, 0, 1, 1, 0, 0, 0, 1, 1, 1,
    ]  # fmt: skip


def test_leaderboard_rows_come_from_the_readme_table(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(
        "| method | F1 | FAR % | MAR % | changepoint NAB (standard / low FP / low FN) |\n"
        "|---|---|---|---|---|\n"
        "| Conv-AE | 0.78 | 13.55 | 28.02 | 23.61 / 21.54 / 27.55 |\n"
    )
    assert skab.leaderboard(readme) == [
        skab.BoardRow("Conv-AE", "0.78", "13.55", "28.02", "23.61 / 21.54 / 27.55")
    ]


def write_skab_file(path: Path, rows: int, anomaly: range) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["datetime;Current;Pressure;anomaly;changepoint"]
    rng = np.random.default_rng(len(anomaly))
    for i in range(rows):
        stamp = np.datetime64("2020-03-09T10:00:00") + np.timedelta64(i, "s")
        bad = i in anomaly
        current = 1.3 + 0.01 * rng.standard_normal() + (5.0 if bad else 0.0)
        pressure = 0.4 + 0.01 * rng.standard_normal()
        edge = i in (anomaly.start, anomaly.stop)
        lines.append(
            f"{str(stamp).replace('T', ' ')};{current};{pressure};{int(bad)}.0;{int(edge)}.0"
        )
    path.write_text("\n".join(lines) + "\n")


def test_harness_runs_a_tiny_skab_folder_through_the_backtest_and_prints_the_board(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "skab"
    write_skab_file(data / "valve1" / "0.csv", 600, range(480, 560))
    write_skab_file(data / "other" / "1.csv", 600, range(500, 540))
    (data / "README.md").write_text(
        "| method | F1 | FAR % | MAR % | NAB |\n|---|---|---|---|---|\n"
        '| always "anomaly" | 0.70 | 100 | 0 | -1.47 |\n'
    )
    assert skab.main(["--data", str(data)]) == 0
    printed = capsys.readouterr().out
    assert "2 files, 400 scored rows, 4 true changepoints" in printed
    assert "primary mapping: 'case open'" in printed
    assert 'always "anomaly"' in printed
    assert "detect.learning_hours" in printed or "no detect.learning_hours" in printed
    assert "backtest: 1,200 rows (0 refused)" in printed


def test_a_missing_folder_is_skipped_with_a_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert skab.main(["--data", str(tmp_path / "absent")]) == 0
    assert "Fix: --data DIR or SKAB_DIR" in capsys.readouterr().out


def test_a_folder_without_skab_files_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(skab.SkabDataError, match="Fix: pass --data DIR"):
        skab.discover(tmp_path)


@pytest.mark.skipif(not SKAB_DIR.is_dir(), reason="SKAB data not present")
def test_always_anomaly_reproduces_the_published_baseline_row() -> None:
    # The README's baseline (F1 0.70, FAR 100 %, MAR 0 %, NAB -1.47) pins down both the scored
    # rows (after row 400) and the metric implementations against SKAB's own figures.
    files = [skab.load_file(path, device) for path, device in skab.discover(SKAB_DIR)]
    ones = [np.ones(len(f) - skab.LEARN_ROWS, dtype=np.int8) for f in files]
    true = [f.anomaly[skab.LEARN_ROWS :] for f in files]
    assert skab.binary_scores(true, ones) == skab.Binary(0.70, 100.0, 0.0)
    nab = skab.nab_scores(
        [
            (f.ts[skab.LEARN_ROWS :], f.changepoint[skab.LEARN_ROWS :], skab.changepoints(o))
            for f, o in zip(files, ones, strict=True)
        ]
    )
    assert nab["standard"] == -1.47
