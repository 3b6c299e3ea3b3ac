"""A deterministic simulated fleet of connected products, with ground truth.

Build a fleet with :func:`simulators.fleet.build_fleet`, iterate its readings, write them with
:mod:`simulators.files`, publish them over MQTT with :mod:`simulators.publisher`, and score a
monitor's cases against the fleet's truth with :mod:`simulators.scoring`.
This package never imports from ``monitor``: it stands in for the outside world.
"""

from simulators.fleet import Fleet, Reading, build_fleet, delivery_order

__all__ = ["Fleet", "Reading", "build_fleet", "delivery_order"]
