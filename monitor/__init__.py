"""IoT proactive service monitor: MQTT telemetry in, proactive service cases out."""

__version__ = "0.1.0"
