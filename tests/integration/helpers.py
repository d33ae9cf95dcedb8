"""Helpers of the integration tests: a real Celery worker (and beat) process on Redis, pointed at the
PostgreSQL test database; a thread hammer for races; polling. The fixtures are in conftest.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

from celery import Celery
from django.db import connection, connections

from config.celery import app as celery_app
from config.worker import worker_command
from tests.helpers import redis_url, require_postgres

ROOT = Path(__file__).resolve().parents[2]


class Worker:
    def __init__(self, proc: subprocess.Popen, sender: Celery, queue: str):
        self.proc, self.sender, self.queue = proc, sender, queue

    def send(self, name: str, *args, **options):
        return self.sender.send_task(name, args=list(args), queue=self.queue, **options)

    def children(self) -> list[int]:
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return [int(p) for p in path.read_text().split()] if path.exists() else []

    def kill(self) -> None:
        """SIGKILL the whole worker, main process and children at once (no warm shutdown, no acks)."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=20)


def service_env(queue: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a worker or beat process: the test database, Redis, its own queue."""
    db = connection.settings_dict
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings_test",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "CELERY_BROKER_URL": redis_url(),
        "CELERY_QUEUE": queue,
        **(extra or {}),
    }


@contextmanager
def run_worker(pool: str = "solo", concurrency: int = 1, queue: str | None = None, env: dict | None = None):
    """A worker on its own queue (``queue`` to reuse one, e.g. after a kill); ``env`` overrides settings.

    Tasks this process publishes through the outbox go to the default queue: point it at the
    worker's with ``publish_to(worker.queue)``.
    """
    require_postgres()  # the worker is another process: it cannot see SQLite's in-memory test DB
    url = redis_url()
    queue = queue or f"test-{uuid.uuid4().hex[:8]}"
    env = service_env(queue, env)
    args = worker_command(queue=queue, pool=pool, concurrency=concurrency, loglevel="info")
    sender = Celery(broker=url, set_as_current=False)  # the project app stays current_app
    try:
        with _spawn(args, env, tail=6000) as proc:
            yield Worker(proc, sender, queue)
    finally:
        sender.close()


@contextmanager
def _spawn(args: list[str], env: dict, tail: int):
    """Start a Celery process in its own process group; stop it (SIGTERM, then SIGKILL) and print its log."""
    with tempfile.TemporaryFile(mode="w+") as log:  # a file, not a pipe: a chatty process never blocks on it
        proc = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True, start_new_session=True
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            log.seek(0)
            print(log.read()[-tail:])


@contextmanager
def run_beat(queue: str, tmp_path: Path, env: dict | None = None):
    """``celery beat`` sending the project's schedule to ``queue`` (e.g. the outbox sweep)."""
    args = [sys.executable, "-m", "celery", "-A", "config", "beat", "-l", "info", "-s", str(tmp_path / "beat")]
    with _spawn(args, service_env(queue, env), tail=3000) as proc:
        yield proc


@contextmanager
def publish_to(queue: str):
    """Tasks this test process publishes (the outbox relay) go to ``queue`` instead of Celery's default."""
    old = celery_app.conf.task_default_queue, celery_app.conf.task_always_eager
    celery_app.conf.task_default_queue, celery_app.conf.task_always_eager = queue, False
    try:
        yield
    finally:
        celery_app.conf.task_default_queue, celery_app.conf.task_always_eager = old


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
