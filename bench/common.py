"""What every benchmark row shares: databases, Django, data loading, gunicorn, wrk, results.

A row is a module ``bench/<row>.py`` with ``main()``; ``python -m bench.<row> [--quick]`` runs it
alone, ``python -m bench.run`` runs them all (``make bench``). Each row runs in its own process
(Django is set up once per process, against that row's fresh database) and hands its results to
the runner as JSON (``--json FILE``).

Environment:
  BENCH_PG          PostgreSQL server, default postgres://postgres@127.0.0.1:5432
  BENCH_REDIS       Redis DB for the cache, broker and throttles, default redis://127.0.0.1:6379/13
  BENCH_DB_PREFIX   prefix of the databases a run creates and drops, default loyalty_bench_
  BENCH_TEMPLATE_DB a migrated database to clone instead of migrating (the runner sets it)
  BENCH_KEEP_DB     keep the row's database at the end (to look at it)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
REDIS = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/13")
DB_PREFIX = os.environ.get("BENCH_DB_PREFIX", "loyalty_bench_")
SETTINGS = "bench.settings"
PYTHON = sys.executable
BIN = Path(PYTHON).parent


# --- results -------------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the table: a figure, the limit measured in the same run, their ratio, the target."""

    row: str  # the group (http, contended, codes, ...), what BENCH_ONLY selects
    name: str
    figure: str
    limit: str = "—"
    ratio: float | None = None
    target: str = ""
    met: bool | None = None
    details: dict[str, Any] = field(default_factory=dict)


def ratio_met(ratio: float | None, minimum: float) -> bool | None:
    return None if ratio is None else ratio >= minimum


def parse_args(description: str, **defaults: Any) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test of the harness")
    parser.add_argument("--json", help="write the rows here as JSON (the runner uses it)")
    for name, value in defaults.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=None)
    args = parser.parse_args()
    return args


def size(args: argparse.Namespace, name: str, full: Any, quick: Any) -> Any:
    """An explicit --name wins; else the quick or the full default."""
    value = getattr(args, name, None)
    if value is not None:
        return value
    return quick if args.quick else full


def emit(args: argparse.Namespace, rows: list[Row]) -> None:
    """Print the rows (a row run alone) and hand them to the runner."""
    print_table(rows)
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in rows], indent=2, default=str))


def _fmt_ratio(r: Row) -> str:
    return "—" if r.ratio is None else f"{r.ratio:.2f}"


def _fmt_met(r: Row) -> str:
    return {True: "yes", False: "NO", None: "—"}[r.met]


def print_table(rows: list[Row]) -> None:
    headers = ("row", "figure", "limit in the same run", "ratio", "target", "met?")
    table = [(r.name, r.figure, r.limit, _fmt_ratio(r), r.target, _fmt_met(r)) for r in rows]
    widths = [max(len(h), *(len(t[i]) for t in table)) if table else len(h) for i, h in enumerate(headers)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    print()
    print(line.format(*headers))
    print(line.format(*("-" * w for w in widths)))
    for t in table:
        print(line.format(*t))
    print()


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def peak_mb() -> float:
    """This process's peak resident memory (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- databases -----------------------------------------------------------------------------------


def admin_sql(sql: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(sql)


def db_url(name: str) -> str:
    return f"{PG}/{name}"


def migrate(name: str) -> None:
    env = {**os.environ, **server_env(name), "DJANGO_SETTINGS_MODULE": SETTINGS}
    subprocess.run([PYTHON, "manage.py", "migrate", "-v0", "--no-input"], cwd=ROOT, env=env, check=True)


def create_database(name: str) -> None:
    """A fresh, migrated database: a copy of BENCH_TEMPLATE_DB when given, else migrated here."""
    template = os.environ.get("BENCH_TEMPLATE_DB")
    if template:
        admin_sql(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    else:
        admin_sql(f'CREATE DATABASE "{name}"')
        migrate(name)


def drop_database(name: str) -> None:
    admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def fresh_database(label: str) -> Iterator[str]:
    """Create ``<prefix><label>_<pid>``, set Django up on it, drop it at the end."""
    name = f"{DB_PREFIX}{label}_{os.getpid()}"
    create_database(name)
    try:
        setup_django(name)
        yield name
    finally:
        try:
            from django.db import connections

            connections.close_all()
        except Exception:
            pass
        if not os.environ.get("BENCH_KEEP_DB"):
            drop_database(name)
        flush_redis()


def server_env(name: str) -> dict[str, str]:
    """Production-like settings (see docs/performance.md), on plain HTTP, with raised throttles."""
    return {
        "DEBUG": "false",
        "SECRET_KEY": "bench-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
        "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
        "SECURE_SSL_REDIRECT": "false",
        "DATABASE_URL": db_url(name),
        "CONN_MAX_AGE": "600",
        "CACHE_URL": REDIS,
        "CELERY_BROKER_URL": REDIS,
        "API_THROTTLE_USER": "100000000/minute",
        "API_THROTTLE_ANON": "100000000/minute",
        "LOG_LEVEL": "WARNING",
    }


@contextmanager
def celery_worker(name: str, *, queue: str, concurrency: int) -> Iterator[subprocess.Popen]:
    """A real ``celery worker`` (prefork) on ``queue`` against the row's database, in a process of
    its own, for the ``with`` block: terminated when the block ends, however it ends."""
    from config.worker import worker_command

    worker = subprocess.Popen(
        worker_command(queue=queue, pool="prefork", concurrency=concurrency, loglevel="warning"),
        cwd=ROOT,
        env={**os.environ, **server_env(name), "DJANGO_SETTINGS_MODULE": SETTINGS},
    )
    try:
        yield worker
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def setup_django(name: str) -> None:
    os.environ.update(server_env(name))
    os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS
    import django

    django.setup()


def flush_redis() -> None:
    """Empty our own Redis DB (cache counters, queued tasks) so that the next row starts clean."""
    try:
        import redis

        redis.Redis.from_url(REDIS).flushdb()
    except Exception as exc:
        print(f"could not flush {REDIS}: {exc}", file=sys.stderr)


def sql(statement: str, params: list[Any] | tuple[Any, ...] | None = None) -> list[tuple]:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(statement, params)
        return cur.fetchall() if cur.description else []


def analyze() -> None:
    sql("ANALYZE")


def columns(table: str) -> list[str]:
    rows = sql(
        "SELECT column_name FROM information_schema.columns WHERE table_name = %s AND table_schema = 'public'"
        " ORDER BY ordinal_position",
        [table],
    )
    return [r[0] for r in rows]


def clone_rows(
    table: str,
    template_id: int,
    *,
    overrides: dict[str, str],
    source: str = "",
    where: str = "",
    params: list[Any] | None = None,
) -> int:
    """Copy one row made by the real services many times, in one INSERT ... SELECT.

    ``overrides`` maps columns to SQL expressions (over ``t``, the template row, and whatever
    ``source`` adds to FROM, e.g. ``generate_series(1, 1000) g``; ``where`` may use %s ``params``);
    every other column (except
    ``id``) is copied from the template, so a column added later is filled like the template's.
    This loads the million-row sets in seconds, where the services would take hours.
    """
    cols = [c for c in columns(table) if c != "id"]
    unknown = set(overrides) - set(cols)
    if unknown:
        raise ValueError(f"{table} has no column(s) {sorted(unknown)}")
    # overrides and source are SQL with no parameters: a literal % (modulo) is doubled for the driver
    select = ", ".join(overrides[c].replace("%", "%%") if c in overrides else f't."{c}"' for c in cols)
    quoted = ", ".join(f'"{c}"' for c in cols)  # some columns are SQL key words (e.g. "full")
    from_extra = f", {source.replace('%', '%%')}" if source else ""
    condition = f" AND ({where})" if where else ""
    statement = f"INSERT INTO {table} ({quoted}) SELECT {select} FROM {table} t{from_extra} WHERE t.id = %s{condition}"
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(statement, [template_id, *(params or [])])
        return cur.rowcount


# --- fixtures through the real services --------------------------------------------------------


def superuser(username: str = "bench"):
    from django.contrib.auth.models import User

    user, _ = User.objects.get_or_create(
        username=username, defaults={"is_superuser": True, "is_staff": True, "email": f"{username}@example.com"}
    )
    return user


def integration_user(username: str = "bench-integration"):
    """An API user in the Integration role (not a superuser: the permission checks are measured too)."""
    from django.contrib.auth.models import Group, User

    from loyalty.roles import INTEGRATION

    user, _ = User.objects.get_or_create(username=username)
    user.groups.add(Group.objects.get(name=INTEGRATION))
    return user


def api_token(user) -> str:
    """A key for ``Authorization: Token <key>``: DRF's token, or the project's API key command."""
    from io import StringIO

    from django.conf import settings
    from django.core.management import call_command, get_commands

    if "create_api_key" in get_commands():
        out = StringIO()
        call_command("create_api_key", user.get_username(), "--name", "bench", stdout=out)
        words = re.findall(r"[A-Za-z0-9_\-\.]{24,}", out.getvalue())
        if not words:
            raise RuntimeError(f"create_api_key printed no key: {out.getvalue()!r}")
        return words[-1]
    if "rest_framework.authtoken" in settings.INSTALLED_APPS:
        from rest_framework.authtoken.models import Token

        return Token.objects.get_or_create(user=user)[0].key
    raise RuntimeError("No way to make an API key: update bench.common.api_token")


def metric():
    from loyalty.models import Metric

    return Metric.objects.get_or_create(code="points", defaults={"name": "Points"})[0]


def tier():
    from loyalty.models import Tier

    return Tier.objects.get_or_create(code="BRONZE", defaults={"name": "Bronze", "rank": 1})[0]


def member_with_points(external_id: str, points: int, *, actor, email: str = "", name: str = ""):
    """One member enrolled and credited through the services: the template that clone_rows copies."""
    from loyalty import services

    tier()
    member = services.enroll_member(external_id=external_id, email=email, name=name, actor=actor)
    if points:
        services.credit_points(member=member, metric=metric(), amount=points, actor=actor, reason="bench")
    return member


def clone_members(
    template, prefix: str, n: int, *, extra: dict[str, str] | None = None, entries: dict[str, str] | None = None
) -> tuple[int, int]:
    """n copies of ``template`` (external_id ``<prefix><i>``, i = 1..n) with its tier interval, balance,
    ledger entries and lots. ``entries`` overrides columns of the cloned ledger entries (SQL over
    ``m``, the new member: the ledger is append-only, so they cannot be updated afterwards).
    Returns the (first, last) member id (contiguous: one INSERT)."""
    member_overrides = {
        "external_id": f"'{prefix}' || g",
        "email": f"'{prefix.lower()}' || g || '@example.com'",
        "name": f"'Bench {prefix}' || g",
        **(extra or {}),
    }
    clone_rows("loyalty_member", template.pk, overrides=member_overrides, source=f"generate_series(1, {n}) g")
    first, last = sql(
        "SELECT min(id), max(id) FROM loyalty_member WHERE external_id LIKE %s AND id <> %s",
        [f"{prefix}%", template.pk],
    )[0]
    assert last - first + 1 == n, (first, last, n)
    span = "m.id BETWEEN %s AND %s"
    for table in ("loyalty_tiermembership", "loyalty_pointbalance"):
        for (row_id,) in sql(f"SELECT id FROM {table} WHERE member_id = %s", [template.pk]):
            clone_rows(
                table,
                row_id,
                overrides={"member_id": "m.id"},
                source="loyalty_member m",
                where=span,
                params=[first, last],
            )
    for (entry_id,) in sql("SELECT id FROM loyalty_ledgerentry WHERE member_id = %s", [template.pk]):
        clone_rows(
            "loyalty_ledgerentry",
            entry_id,
            overrides={
                "member_id": "m.id",
                "idempotency_key": "NULL",
                "source_id": f"'clone-{entry_id}'",
                **(entries or {}),
            },
            source="loyalty_member m",
            where=span,
            params=[first, last],
        )
        lot = sql("SELECT id FROM loyalty_pointlot WHERE entry_id = %s", [entry_id])
        if lot:
            clone_rows(
                "loyalty_pointlot",
                lot[0][0],
                overrides={"member_id": "e.member_id", "entry_id": "e.id"},
                source="loyalty_ledgerentry e",
                where="e.member_id BETWEEN %s AND %s AND e.source_id = %s",
                params=[first, last, f"clone-{entry_id}"],
            )
    return first, last


# --- processes: gunicorn, wrk --------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gunicorn:
    """gunicorn serving bench.settings (config.settings + the bare baseline view) on a free port."""

    def __init__(self, db: str, *, workers: int = 3) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, **server_env(db), "DJANGO_SETTINGS_MODULE": SETTINGS}
        # lives as long as the server: closed and removed by stop()
        self.log = tempfile.NamedTemporaryFile(prefix="bench-gunicorn-", suffix=".log", delete=False)  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                str(BIN / "gunicorn"),
                "config.wsgi",
                "--workers",
                str(workers),
                "--worker-class",
                "sync",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--log-level",
                "warning",
                "--timeout",
                "60",
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self._wait()

    def _wait(self, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {Path(self.log.name).read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/bench/ping", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError("gunicorn did not answer in time")

    def worker_pids(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    def log_tail(self, chars: int = 3000) -> str:
        return Path(self.log.name).read_text()[-chars:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        os.unlink(self.log.name)

    def __enter__(self) -> Gunicorn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


WRK_LUA = Path(__file__).with_name("wrk") / "bodies.lua"


@dataclass
class WrkResult:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    statuses: dict[str, int]
    socket_errors: dict[str, int]
    exhausted: int

    @property
    def non_2xx(self) -> int:
        return sum(n for s, n in self.statuses.items() if not s.startswith("2"))

    @property
    def errors(self) -> int:
        """Everything that is not a 2xx answer: other statuses and socket errors (not timeouts twice)."""
        return self.non_2xx + sum(self.socket_errors.values())

    def summary(self) -> str:
        return f"{self.rps:.0f} req/s, p50 {self.p50_ms:.0f} ms, p99 {self.p99_ms:.0f} ms"


def wrk(
    url: str,
    path: str,
    bodies: list[str],
    *,
    token: str,
    seconds: int,
    threads: int = 2,
    connections: int = 16,
) -> WrkResult:
    """Load ``url + path`` with POSTs, each body used once (bench/wrk/bodies.lua walks the list).

    A thread that runs out of bodies stops (counted as ``exhausted``), so no body is sent twice."""
    with tempfile.NamedTemporaryFile("w", prefix="bench-bodies-", suffix=".txt", delete=False) as f:
        for body in bodies:
            assert "\n" not in body
            f.write(body + "\n")
    env = {
        **os.environ,
        "BENCH_BODIES": f.name,
        "BENCH_PATH": path,
        "BENCH_TOKEN": token,
        "BENCH_THREADS": str(threads),
    }
    try:
        proc = subprocess.run(
            [
                "wrk",
                f"-t{threads}",
                f"-c{connections}",
                f"-d{seconds}s",
                "--timeout",
                "10s",
                "--latency",
                "-s",
                str(WRK_LUA),
                url,
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=seconds + 120,
        )
    finally:
        os.unlink(f.name)
    match = re.search(r"^BENCHJSON (.*)$", proc.stdout, re.M)
    if proc.returncode != 0 or not match:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stdout[-2000:]} {proc.stderr[-2000:]}")
    data = json.loads(match.group(1))
    return WrkResult(
        requests=data["requests"],
        seconds=data["seconds"],
        rps=data["requests"] / data["seconds"] if data["seconds"] else 0.0,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        statuses={str(k): v for k, v in data["statuses"].items()},
        socket_errors={k: v for k, v in data["socket_errors"].items() if v},
        exhausted=data["exhausted"],
    )


def have_wrk() -> bool:
    return subprocess.run(["sh", "-c", "command -v wrk"], capture_output=True).returncode == 0


def child_json(module: str, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``python -m <module> <args>`` (a fresh process, so its peak memory is its own) and read the
    JSON object it prints on its last line."""
    proc = subprocess.run(
        [PYTHON, "-m", module, *args], cwd=ROOT, env={**os.environ, **(env or {})}, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{module} failed: {proc.stdout[-2000:]} {proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])
