"""The command line of this project's Celery worker, for the worker processes that the tests and
the benchmarks start for themselves (production runs its own: docs/operations.md)."""

from __future__ import annotations

import sys


def worker_command(*, queue: str, pool: str, concurrency: int, loglevel: str) -> list[str]:
    """A worker on ``queue`` only, with this interpreter. No heartbeat, gossip or mingle: these
    short-lived workers need nothing from each other, and they start faster without."""
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "config",
        "worker",
        f"--pool={pool}",
        f"--concurrency={concurrency}",
        "-Q",
        queue,
        "--without-heartbeat",
        "--without-gossip",
        "--without-mingle",
        "-l",
        loglevel,
    ]
