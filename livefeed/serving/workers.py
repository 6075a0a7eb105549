"""``livefeed serve --workers N``: N processes on one listening socket, each with its own hub.

A small supervisor of our own rather than uvicorn's, so every worker runs livefeed's
``Server`` (which drains readers with 1001 before shutting down). Settings reach the
workers as ``LIVEFEED_*`` variables set by the caller; the embedded Redis is the parent's.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from multiprocessing.process import BaseProcess

from livefeed.serving.server import Server, server_config

logger = logging.getLogger("livefeed.workers")

_CHECK_INTERVAL = 0.5
_RESTART_BACKOFF = 1.0


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _work(
    sock: socket.socket, host: str, port: int, drain_seconds: float, log_level: str, index: int
) -> None:
    metrics_port = os.environ.get("LIVEFEED_METRICS_PORT", "").strip()
    if metrics_port:
        # Each worker keeps its own counters: each is scraped on its own port.
        os.environ["LIVEFEED_METRICS_PORT"] = str(int(metrics_port) + index)
    config = server_config(
        "livefeed.app:app_from_environment",
        host,
        port,
        drain_seconds,
        factory=True,
        log_level=log_level,
    )
    Server(config).run(sockets=[sock])


def run_workers(host: str, port: int, drain_seconds: float, workers: int, log_level: str) -> None:
    """Run ``workers`` worker processes until SIGTERM/SIGINT, restarting any that dies."""
    sock = _listen(host, port)
    context = multiprocessing.get_context("spawn")
    stopping = threading.Event()

    def start(index: int) -> BaseProcess:
        process = context.Process(
            target=_work, args=(sock, host, port, drain_seconds, log_level, index), daemon=False
        )
        process.start()
        logger.info("started worker pid %s", process.pid)
        return process

    def stop(signum: int, frame: object) -> None:
        stopping.set()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    processes = [start(index) for index in range(workers)]
    logger.info("livefeed running on http://%s:%d with %d workers", host, port, workers)
    try:
        while not stopping.wait(_CHECK_INTERVAL):
            for index, process in enumerate(processes):
                if not process.is_alive():
                    logger.error(
                        "worker pid %s exited (%s); restarting", process.pid, process.exitcode
                    )
                    time.sleep(_RESTART_BACKOFF)
                    processes[index] = start(index)
    finally:
        for process in processes:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)  # each drains its readers with 1001
        deadline = time.monotonic() + drain_seconds + 15
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                logger.error("worker pid %s did not stop in time; killing it", process.pid)
                process.kill()
                process.join()
        sock.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
