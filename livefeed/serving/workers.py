"""``livefeed serve --workers N``: N processes on one listening socket, each with its own hub.

A small supervisor of our own rather than uvicorn's, so every worker runs livefeed's
``Server`` (which drains readers with 1001 before shutting down). Each worker gets the
parent's resolved ``Settings`` as an argument (the embedded Redis is the parent's) and
builds its app with the function it is given.

A worker that started serving and died later is started again after a short back-off. A
worker that dies before it ever served (Redis unreachable, a bad setting) is tried
``START_ATTEMPTS`` times with a growing back-off; then the supervisor stops every worker
and exits non-zero, so a process manager sees the failure instead of a restart loop.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event

import uvicorn
from starlette.applications import Starlette

from livefeed.serving.server import Server, server_config
from livefeed.settings import Settings

logger = logging.getLogger("livefeed.workers")

AppFactory = Callable[[Settings], Starlette]

START_ATTEMPTS = 3  # start-up failures in a row before the supervisor gives up
RESTART_BACKOFF = 0.5  # seconds before the first restart; doubled per start-up failure
RESTART_BACKOFF_MAX = 8.0
STOP_GRACE = 15.0  # beyond the drain window, before a worker that does not stop is killed
_CHECK_INTERVAL = 0.2


class _Worker(Server):
    """The server of one worker process; tells the supervisor once it serves."""

    def __init__(self, config: uvicorn.Config, serving: Event) -> None:
        super().__init__(config)
        self._serving = serving

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self._serving.set()


def _work(sock: socket.socket, settings: Settings, app_for: AppFactory, serving: Event) -> None:
    """The body of one worker process."""
    config = server_config(
        app_for(settings),
        settings.host,
        settings.port,
        settings.drain_seconds,
        log_level=settings.log_level,
    )
    _Worker(config, serving).run(sockets=[sock])


@dataclass(slots=True)
class _Slot:
    """One of the N workers, across its restarts."""

    settings: Settings
    process: BaseProcess | None = None
    serving: Event | None = None
    failures: int = 0  # start-up failures in a row
    restart_at: float | None = None
    announced: bool = False  # its serving has been logged

    @property
    def has_served(self) -> bool:
        return self.serving is not None and self.serving.is_set()

    def exited(self) -> BaseProcess | None:
        """The worker's process if it has exited and no restart is planned yet."""
        if self.restart_at is None and self.process is not None and not self.process.is_alive():
            return self.process
        return None


def restart_delay(failures: int) -> float:
    """Seconds to wait before starting a worker again after ``failures`` failed starts."""
    return float(min(RESTART_BACKOFF_MAX, RESTART_BACKOFF * 2**failures))


def worker_settings(settings: Settings, index: int) -> Settings:
    """Worker ``index``'s settings: its own metrics port, as each keeps its own counters."""
    if settings.metrics_port is None:
        return settings
    return settings.with_(metrics_port=settings.metrics_port + index)


class _Supervisor:
    """Starts the workers, restarts the ones that die, and stops them all at the end."""

    def __init__(self, sock: socket.socket, settings: Settings, app_for: AppFactory) -> None:
        self._sock, self._app_for = sock, app_for
        self._context = multiprocessing.get_context("spawn")
        self._slots = [_Slot(worker_settings(settings, i)) for i in range(settings.workers)]
        self._drain_seconds = settings.drain_seconds
        self.stopping = threading.Event()
        self.any_served = False

    def run(self) -> int:
        """Supervise until stopped (0) or until a worker cannot start (1)."""
        for slot in self._slots:
            self._start(slot)
        try:
            while not self.stopping.wait(self._next_wait()):
                if not self._tend():
                    return 1
            self._note_serving()
            return 0 if self.any_served else 1
        finally:
            self._stop_all()

    def _start(self, slot: _Slot) -> None:
        slot.serving = self._context.Event()
        slot.process = self._context.Process(
            target=_work, args=(self._sock, slot.settings, self._app_for, slot.serving)
        )
        slot.process.start()
        slot.restart_at, slot.announced = None, False
        logger.info("started worker pid %s", slot.process.pid)

    def _tend(self) -> bool:
        """Restart the workers that are due; False once one has failed to start too often."""
        now = time.monotonic()
        self._note_serving()
        for slot in self._slots:
            exited = slot.exited()
            if exited is not None and not self._schedule_restart(slot, exited, now):
                return False
            if slot.restart_at is not None and now >= slot.restart_at:
                self._start(slot)
        return True

    def _schedule_restart(self, slot: _Slot, exited: BaseProcess, now: float) -> bool:
        pid, code = exited.pid, exited.exitcode
        if slot.has_served:
            slot.failures = 0
            logger.error("worker pid %s exited (%s); restarting it", pid, code)
        else:
            slot.failures += 1
            if slot.failures >= START_ATTEMPTS:
                logger.error(
                    "worker pid %s could not start (exit %s), %d times in a row; stopping",
                    pid,
                    code,
                    slot.failures,
                )
                return False
            logger.error("worker pid %s could not start (exit %s); trying again", pid, code)
        slot.restart_at = now + restart_delay(slot.failures)
        return True

    def _note_serving(self) -> None:
        for slot in self._slots:
            if slot.has_served and not slot.announced and slot.process is not None:
                slot.announced = self.any_served = True
                logger.info("worker pid %s is serving", slot.process.pid)

    def _next_wait(self) -> float:
        due = [s.restart_at for s in self._slots if s.restart_at is not None]
        if not due:
            return _CHECK_INTERVAL
        return max(0.0, min(_CHECK_INTERVAL, min(due) - time.monotonic()))

    def _stop_all(self) -> None:
        processes = [s.process for s in self._slots if s.process is not None]
        for process in processes:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)  # each drains its readers with 1001
        deadline = time.monotonic() + self._drain_seconds + STOP_GRACE
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                logger.error("worker pid %s did not stop in time; killing it", process.pid)
                process.kill()
                process.join()


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def run_workers(settings: Settings, app_for: AppFactory) -> int:
    """Run ``settings.workers`` worker processes until SIGTERM/SIGINT; the exit code.

    ``app_for`` builds each worker's app from its settings in the worker process, so it
    must be a module-level function (it is pickled by name). Returns 0 when stopped after
    a worker served, 1 when none ever did or one could not start ``START_ATTEMPTS`` times.
    """
    try:
        sock = _listen(settings.host, settings.port)
    except OSError as exc:
        logger.error("cannot listen on %s:%d: %s", settings.host, settings.port, exc)
        return 1
    supervisor = _Supervisor(sock, settings, app_for)

    def stop(signum: int, frame: object) -> None:
        supervisor.stopping.set()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    logger.info(
        "livefeed running on http://%s:%d with %d workers",
        settings.host,
        settings.port,
        settings.workers,
    )
    try:
        return supervisor.run()
    finally:
        sock.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
