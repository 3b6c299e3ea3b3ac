"""When to try a failed notification again: capped exponential backoff with a fixed jitter."""

from __future__ import annotations


def retry_delay(attempts: int, base: float, cap: float, key: int) -> float:
    """Seconds to wait after the ``attempts``-th failure of the row identified by ``key``.

    ``base * 2**(attempts-1)``, capped at ``cap``, then shortened by up to 10 %. The jitter
    depends only on ``key`` and ``attempts``: rows that failed together (one SMTP outage)
    spread out instead of retrying in lock-step, and a test can still predict the time.
    """
    delay = min(cap, base * 2.0 ** max(0, attempts - 1))
    spread = ((key * 2654435761 + attempts * 40503) % 1000) / 1000.0
    return delay * (1.0 - 0.1 * spread)
