"""Who may use the support API: whoever presents ``[api] token`` as a bearer token.

The support routes (cases, silences, suppressions, incidents, rule statistics) depend on
:func:`require_token`. ``/health`` and the customers' feedback and visit links stay public:
the links carry their own signed tokens (see :mod:`monitor.api.feedback`).

Without a token the API is open, which is only acceptable on a loopback address:
:func:`check_exposure` refuses anything else.
"""

from __future__ import annotations

import ipaddress
import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from monitor.config import ApiSettings, ConfigError

_BEARER = HTTPBearer(auto_error=False, description="The [api] token of the monitor.")


def require_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)],
) -> None:
    """Let the request through if it carries ``Authorization: Bearer <[api] token>`` (or no
    token is configured); else answer 401."""
    api: ApiSettings = request.app.state.settings.api
    if api.token is None:
        return
    expected = api.token.get_secret_value().encode()
    given = credentials.credentials.encode() if credentials is not None else b""
    # compare_digest takes as long whatever prefix matches, so the token cannot be guessed
    # byte by byte from response times.
    if not secrets.compare_digest(given, expected):
        raise HTTPException(
            401,
            "this route needs 'Authorization: Bearer <token>' with the monitor's [api] token",
            headers={"WWW-Authenticate": "Bearer"},
        )


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or "localhost") is reachable only from this machine."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def check_exposure(api: ApiSettings) -> None:
    """Raise :class:`ConfigError` if the API would listen beyond loopback without a token."""
    if api.token is None and not is_loopback(api.host):
        raise ConfigError(
            f"key 'api.host' = {api.host!r} is not a loopback address and 'api.token' is not "
            "set, so anyone who can reach the port could read and change cases.\n"
            "Fix: set 'token' in the [api] section (or MONITOR_API__TOKEN) to a long random "
            "secret, e.g. the output of "
            "python -c 'import secrets; print(secrets.token_urlsafe(32))', "
            "and send it as 'Authorization: Bearer <token>'; or serve on 127.0.0.1."
        )
