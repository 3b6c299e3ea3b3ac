"""The support webhook channel: one outbox payload → one signed, idempotent HTTP POST."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

import httpx

from monitor.config import WebhookSettings
from monitor.notify.errors import DeliveryError

_RETRYABLE_4XX = frozenset({408, 425, 429})


def encode_body(payload: Mapping[str, Any]) -> bytes:
    """The exact bytes that are posted (and signed) for ``payload``."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def signature(secret: str, body: bytes) -> str:
    """The ``X-Monitor-Signature`` value: ``sha256=`` + hex HMAC-SHA256 of ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


async def post_webhook(
    client: httpx.AsyncClient,
    settings: WebhookSettings,
    url: str,
    outbox_id: int,
    payload: Mapping[str, Any],
) -> None:
    """POST ``payload`` as JSON to ``url``, or raise :class:`DeliveryError`.

    2xx is delivered. 4xx (except 408, 425, 429) is permanent: the receiver refuses this
    request and will refuse it again. 5xx, timeouts and connection errors are retried.
    The ``Idempotency-Key`` is the same on every attempt, so the receiver can drop a repeat.
    """
    body = encode_body(payload)
    headers = {
        "Content-Type": "application/json",
        "Idempotency-Key": f"outbox-{outbox_id}",
    }
    if settings.secret:
        headers["X-Monitor-Signature"] = signature(settings.secret, body)
    try:
        response = await client.post(url, content=body, headers=headers, timeout=settings.timeout)
    except httpx.HTTPError as exc:
        raise DeliveryError(f"webhook {url} unreachable: {exc!r}") from exc
    if response.is_success:
        return
    status = response.status_code
    permanent = 400 <= status < 500 and status not in _RETRYABLE_4XX
    raise DeliveryError(
        f"webhook {url} answered {status}: {response.text[:200]}", permanent=permanent
    )
