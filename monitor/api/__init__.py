"""The monitor's HTTP API."""
