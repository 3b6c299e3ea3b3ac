"""Adding and expiring silences and maintenance windows, checked before they are stored."""

from __future__ import annotations

from sqlmodel import Session, col, select

from monitor.store.models import SILENCE_REPEATS, SILENCE_SCOPES, Silence


class SilenceError(ValueError):
    """A silence that cannot be stored as given; the message says what to change."""


def add_silence(
    session: Session,
    *,
    scope: str,
    value: str,
    starts_at: float,
    ends_at: float,
    repeat: str = "none",
    expires_at: float | None = None,
    kind: str = "silence",
    comment: str = "",
    actor: str,
    now: float,
) -> Silence:
    """Store a silence (the caller commits). One-off silences expire when they end."""
    if scope not in SILENCE_SCOPES:
        raise SilenceError(f"scope {scope!r} is unknown; use one of {', '.join(SILENCE_SCOPES)}")
    if not value:
        raise SilenceError(f"a {scope} silence needs the {scope} it applies to")
    if repeat not in SILENCE_REPEATS:
        raise SilenceError(f"repeat {repeat!r} is unknown; use one of {', '.join(SILENCE_REPEATS)}")
    if ends_at <= starts_at:
        raise SilenceError("a silence must end after it starts; give a positive duration")
    if repeat != "none" and expires_at is None:
        raise SilenceError("a recurring silence needs an expiry (--expires / expires_at)")
    if kind not in ("silence", "maintenance"):
        raise SilenceError(f"kind {kind!r} is unknown; use 'silence' or 'maintenance'")
    silence = Silence(
        scope=scope,
        value=value,
        starts_at=starts_at,
        ends_at=ends_at,
        repeat=repeat,
        expires_at=ends_at if expires_at is None else expires_at,
        kind=kind,
        comment=comment,
        created_by=actor,
        created_wall=now,
    )
    session.add(silence)
    session.flush()
    return silence


def expire_silence(session: Session, silence_id: int, *, now: float) -> Silence:
    """End a silence now (kept in the table, so the suppression log still explains itself)."""
    silence = session.get(Silence, silence_id)
    if silence is None:
        raise SilenceError(f"no silence {silence_id}")
    silence.expires_at = min(silence.expires_at, now)
    session.add(silence)
    return silence


def list_silences(session: Session, *, now: float, include_expired: bool = False) -> list[Silence]:
    query = select(Silence).order_by(col(Silence.id))
    if not include_expired:
        query = query.where(Silence.expires_at > now)
    return list(session.exec(query))
