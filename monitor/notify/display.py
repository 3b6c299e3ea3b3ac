"""The display channel: a message for the product's own screen, on its MQTT ``commands`` topic.

Published with QoS 1 and not retained (see docs/device-contract.md): a device that is
offline gets it from its persistent session when it reconnects, and a later command is
never shadowed by an old retained one.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from typing import Any

import aiomqtt

from monitor.config import MqttSettings
from monitor.notify.errors import DeliveryError


def commands_topic(prefix: str, device_id: str) -> str:
    """``<prefix>/<device_id>/commands``.

    >>> commands_topic("devices", "pump-1")
    'devices/pump-1/commands'
    """
    return f"{prefix}/{device_id}/commands"


async def publish_display_message(
    settings: MqttSettings, device_id: str, outbox_id: int, payload: Mapping[str, Any]
) -> None:
    """Publish ``payload`` (with ``message_id`` ``outbox-<id>``) to the device, or raise."""
    if not device_id or any(c in device_id for c in "/+#"):
        raise DeliveryError(f"device id {device_id!r} is not one topic level", permanent=True)
    body = json.dumps({**payload, "message_id": f"outbox-{outbox_id}"}, ensure_ascii=False)
    try:
        async with aiomqtt.Client(
            settings.host,
            settings.port,
            # Its own identity: the ingest's client id must never be taken over by a sender.
            identifier=f"{settings.client_id}-notify-{secrets.token_hex(4)}",
            username=settings.username,
            password=settings.password,
            keepalive=settings.keepalive,
            timeout=10.0,
        ) as client:
            await client.publish(commands_topic(settings.topic_prefix, device_id), body, qos=1)
    except aiomqtt.MqttError as exc:
        where = f"{settings.host}:{settings.port}"
        raise DeliveryError(f"broker {where} did not take the display message: {exc}") from exc
