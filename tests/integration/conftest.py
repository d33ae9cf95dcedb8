"""A real Celery worker process on Redis, pointed at the PostgreSQL test database."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
from celery import Celery
from django.db import connection, connections

from tests.conftest import redis_url, require_postgres

ROOT = Path(__file__).resolve().parents[2]


class Worker:
    def __init__(self, proc: subprocess.Popen, sender: Celery, queue: str):
        self.proc, self.sender, self.queue = proc, sender, queue

    def send(self, name: str, *args):
        return self.sender.send_task(name, args=list(args), queue=self.queue)

    def children(self) -> list[int]:
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return [int(p) for p in path.read_text().split()] if path.exists() else []


@contextmanager
def run_worker(pool: str = "solo", concurrency: int = 1):
    require_postgres()  # the worker is another process: it cannot see SQLite's in-memory test DB
    url = redis_url()
    queue = f"test-{uuid.uuid4().hex[:8]}"
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings_test",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "CELERY_BROKER_URL": url,
    }
    args = [
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
        "info",
    ]
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sender = Celery(broker=url)
    try:
        yield Worker(proc, sender, queue)
    finally:
        proc.terminate()
        try:
            out, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        print(out[-6000:])
        sender.close()


def wait_for(predicate, timeout: float = 45.0, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def code_or_repr(exc: Exception) -> str:
    """Domain errors carry a code; anything else shows up as itself."""
    return getattr(exc, "code", repr(exc))


def hammer(n: int, fn, outcome=code_or_repr) -> list[str]:
    """Run ``fn(i)`` for i in range(n) in n threads released together; one outcome per thread.

    A call that returns is ``"ok"``; one that raises becomes ``outcome(exc)``.
    """
    barrier = threading.Barrier(n)
    outcomes, lock = [], threading.Lock()

    def run(i):
        try:
            barrier.wait()
            fn(i)
            result = "ok"
        except Exception as exc:
            result = outcome(exc)
        finally:
            connections.close_all()
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes


@pytest.fixture
def worker():
    with run_worker() as w:
        yield w
