"""The one error every channel raises when a delivery did not happen."""

from __future__ import annotations


class DeliveryError(Exception):
    """A notification was not delivered.

    ``permanent`` means trying again cannot help (the receiver refused this message); the
    dispatcher then gives up at once instead of retrying until ``max_attempts``.
    """

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent
