"""The monitor daemon: wires transport, pipeline, outbox dispatcher and metrics together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from prometheus_client import start_http_server
from sqlalchemy.exc import SQLAlchemyError

from monitor.api import create_app
from monitor.api.auth import check_exposure
from monitor.api.server import ApiServer
from monitor.config import Settings
from monitor.heap import QuietCollector
from monitor.ingest import Transport, make_transport
from monitor.notify.dispatcher import Dispatcher
from monitor.pipeline import BatchWork, OpenedCase, Pipeline
from monitor.service_gauges import refresh_service_metrics
from monitor.store import open_database
from rules import Rule, load_rules
from rules.watch import RuleWatcher

log = logging.getLogger(__name__)

_DB_RETRY_MAX_S = 30.0
_SERVICE_REPORT_EVERY_S = 60.0


class Daemon:
    """Runs until :meth:`stop` (or SIGTERM/SIGINT), then drains the batch in hand and exits."""

    def __init__(
        self,
        settings: Settings,
        transport: Transport | None = None,
    ) -> None:
        self.settings = settings
        if settings.api.enabled:
            check_exposure(settings.api)  # refused before anything starts
        self.engine = open_database(settings.database.url, settings.database.migrate)
        self.rules = load_rules(settings.rules.dir)
        self.pipeline = Pipeline(settings, self.engine, self.rules)
        self.transport = transport or make_transport(settings.mqtt)
        self.dispatcher = Dispatcher(self.engine, settings.notify, mqtt=settings.mqtt)
        self.watcher = RuleWatcher(settings.rules.dir, self.rules)
        self._new_rules: list[Rule] | None = None
        self._collector = QuietCollector()
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        self._install_signal_handlers()
        if self.settings.metrics.enabled:
            start_http_server(self.settings.metrics.port, addr=self.settings.metrics.host)
        reporter = asyncio.create_task(self._refresh_service_report())
        log.info(
            "monitor started",
            extra={
                "broker": f"{self.settings.mqtt.host}:{self.settings.mqtt.port}",
                "prefix": self.settings.mqtt.topic_prefix,
                "rules": [r.name for r in self.rules],
                "metrics_port": self.settings.metrics.port,
            },
        )
        api = None
        if self.settings.api.enabled:
            api = ApiServer(
                create_app(self.settings), self.settings.api.host, self.settings.api.port
            )
            await asyncio.to_thread(api.start)
        closer = asyncio.create_task(self._close_on_stop())
        notifier = asyncio.create_task(self.dispatcher.run(self._stop))
        reloader = asyncio.create_task(self._reload_rules())
        try:
            await self._consume()
        finally:
            self._stop.set()
            await reporter
            await closer
            await notifier
            await reloader
            try:
                await asyncio.to_thread(self.pipeline.checkpoint)
            except SQLAlchemyError as exc:
                log.error(
                    "final checkpoint failed; detectors will resume from the previous one",
                    extra={"error": str(exc)[:200]},
                )
            await asyncio.to_thread(self.pipeline.close)
            if api is not None:
                await asyncio.to_thread(api.stop)
            log.info("monitor stopped")

    async def _consume(self) -> None:
        self._collector.between_batches()
        async for batch in self.transport.batches():
            if self._new_rules is not None:
                # Swapped between batches, never while the rules stage runs in its thread.
                self.pipeline.rules.replace_rules(self._new_rules)
                self.rules, self._new_rules = self._new_rules, None
            work = await asyncio.to_thread(self.pipeline.compute, batch)
            opened = await self._commit(work)
            if opened is None:
                return
            self.transport.ack(batch)
            if opened:
                self.dispatcher.wake()
            self._collector.between_batches()
            if self._stop.is_set():
                return

    async def _commit(self, work: BatchWork) -> list[OpenedCase] | None:
        """Commit, retrying while the database is away; ``None`` if stopped meanwhile."""
        delay = 0.5
        while True:
            try:
                return await asyncio.to_thread(self.pipeline.commit, work)
            except SQLAlchemyError as exc:
                log.error(
                    "database write failed; holding the batch and retrying",
                    extra={"error": str(exc).splitlines()[0], "retry_in_s": delay},
                )
            if self._stop.is_set():
                return None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)
            delay = min(delay * 2, _DB_RETRY_MAX_S)

    async def _reload_rules(self) -> None:
        """Poll the rules directory (and refresh device attributes) until stopped."""
        every = self.settings.rules.reload_seconds
        refresh_every = self.settings.rules.attributes_refresh_seconds
        last_refresh = asyncio.get_running_loop().time()
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), every or refresh_every)
            if self._stop.is_set():
                return
            if every:
                rules = await asyncio.to_thread(self.watcher.poll)
                if rules is not None:
                    self._new_rules = rules
            if asyncio.get_running_loop().time() - last_refresh >= refresh_every:
                last_refresh = asyncio.get_running_loop().time()
                try:
                    await asyncio.to_thread(self.pipeline.attributes.refresh)
                except SQLAlchemyError as exc:
                    log.error(
                        "device attributes not refreshed; rules use the previous ones",
                        extra={"error": str(exc).splitlines()[0]},
                    )

    async def _close_on_stop(self) -> None:
        await self._stop.wait()
        await self.transport.close()

    async def _refresh_service_report(self) -> None:
        """Keep the ``monitor_service_*`` gauges current while metrics are served."""
        while self.settings.metrics.enabled and not self._stop.is_set():
            try:
                await asyncio.to_thread(refresh_service_metrics, self.engine)
            except SQLAlchemyError as exc:
                log.error("service report failed; will retry", extra={"error": str(exc)[:200]})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), _SERVICE_REPORT_EVERY_S)

    def _install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self._stop.set)
