"""Detection: per-device learned baselines turn telemetry into signals for the rules."""

# First: it decides whether the modules below load compiled or from source.
from monitor import native
from monitor.detect.base import Detector, MetricSignal, SignalSet
from monitor.detect.stage import DetectStage

__all__ = ["DetectStage", "Detector", "MetricSignal", "SignalSet", "native"]
