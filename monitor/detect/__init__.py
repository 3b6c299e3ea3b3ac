"""Detection: per-device learned baselines turn telemetry into signals for the rules."""

from monitor.detect.base import Detector, MetricSignal, SignalSet
from monitor.detect.stage import DetectStage

__all__ = ["DetectStage", "Detector", "MetricSignal", "SignalSet"]
