"""What every throw-away local service here shares: start on entry, clean up on exit."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class LocalService:
    """A service a test, the demo or a benchmark starts for itself and always cleans up.

    Subclasses implement :meth:`start` and :meth:`stop`; :meth:`close` (default: stop) is what
    leaving the ``with`` block does, also when starting failed half-way.
    """

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.stop()

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
