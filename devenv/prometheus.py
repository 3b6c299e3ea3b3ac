"""Reading a Prometheus text endpoint: for tests, the demo and benchmarks."""

from __future__ import annotations

import urllib.request


def scrape(port: int, host: str = "127.0.0.1", timeout: float = 2.0) -> dict[str, float] | None:
    """Every sample by name (labels included in the name, as exposed), or None if not up."""
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=timeout) as response:
            text = response.read().decode()
    except OSError:
        return None
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples
