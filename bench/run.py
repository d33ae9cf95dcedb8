"""Run every benchmark row (``make bench``), print one table, write the results as JSON.

Each row is a module run in its own process against its own fresh database, cloned from one
template database migrated at the start (``BENCH_TEMPLATE_DB``); all of them are dropped at the end.

    python -m bench.run [--quick] [--only api,codes,...] [--out FILE]

Rows (``--only`` / ``make bench BENCH_ONLY=...``): http and contended (both: api), codes, retro,
admin, export, member, dashboard. ``--quick`` runs tiny sizes: a smoke test of the harness, not figures.
A run of every row at full size writes bench/results/latest.json; any other run writes
bench/results/partial.json (not committed). The exit status is non-zero only when a row crashed:
a missed target is a figure, not a failure.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import fields
from pathlib import Path

from bench import common
from bench.common import Row

# row name -> (module, extra arguments)
ROWS = {
    "http": ("bench.api", ["--part", "http"]),
    "contended": ("bench.api", ["--part", "contended"]),
    "codes": ("bench.codes", []),
    "retro": ("bench.retro", []),
    "admin": ("bench.admin_lists", []),
    "export": ("bench.export", []),
    "member": ("bench.member", []),
    "webhooks": ("bench.webhooks", []),
    "dashboard": ("bench.dashboard", []),
}
ORDER = list(ROWS)
RESULTS = common.ROOT / "bench" / "results"


def machine() -> dict:
    import django
    import psycopg

    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        mem_kb = 0

    def out(*cmd: str) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, cwd=common.ROOT).stdout.strip()
        except OSError:
            return ""

    with psycopg.connect(f"{common.PG}/postgres") as conn:
        pg = conn.execute("SELECT version()").fetchone()[0]
    try:
        import redis

        redis_version = redis.Redis.from_url(common.REDIS).info("server")["redis_version"]
    except Exception:
        redis_version = "unknown"
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "django": django.get_version(),
        "postgresql": pg,
        "redis": redis_version,
        "wrk": out("sh", "-c", "wrk --version 2>&1 | head -1"),
        "git_commit": out("git", "rev-parse", "HEAD"),
        "git_dirty": bool(out("git", "status", "--porcelain")),
        "load_average_at_start": list(os.getloadavg()),
    }


def markdown(path: Path) -> None:
    """Print a results file as the Markdown table docs/performance.md quotes."""
    data = json.loads(path.read_text())
    m = data["machine"]
    print(
        f"{data['date']} ({data['scale']}), {m['cores']} cores ({m['cpu']}), {m['postgresql'].split(' on ')[0]},"
        f" Redis {m['redis']}, commit {m['git_commit'][:10]}, load average at start"
        f" {m['load_average_at_start'][0]:.1f}, at end {m.get('load_average_at_end', [0])[0]:.1f}\n"
    )
    print("| row | figure | limit in the same run | ratio | target | met? |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in data["rows"]:
        ratio = "—" if r["ratio"] is None else f"{r['ratio']:.2f}"
        met = {True: "yes", False: "**no**", None: "—"}[r["met"]]
        cells = [r["name"], r["figure"], r["limit"], ratio, r["target"], met]
        print("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", type=Path, help="print this results file as a Markdown table, and stop")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--only", default="", help="comma-separated rows: " + ", ".join(ORDER) + " (api = both http rows)"
    )
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    if args.markdown:
        markdown(args.markdown)
        return
    wanted = [w.strip() for w in args.only.replace(" ", ",").split(",") if w.strip()]
    wanted = [r for w in wanted for r in (["http", "contended"] if w == "api" else [w])]
    unknown = set(wanted) - set(ROWS)
    if unknown:
        raise SystemExit(f"unknown row(s) {sorted(unknown)}; rows: {', '.join(ORDER)}, api")
    selected = [r for r in ORDER if not wanted or r in wanted]
    complete = not args.quick and selected == ORDER
    out_path = Path(args.out) if args.out else RESULTS / ("latest.json" if complete else "partial.json")
    if ("http" in selected or "contended" in selected) and not common.have_wrk():
        raise SystemExit("wrk is not installed (make bench installs it: apt-get install wrk)")

    info = machine()
    started = dt.datetime.now(dt.UTC)
    common.log(
        f"bench: {', '.join(selected)}{' (quick)' if args.quick else ''} on {info['cores']} cores, {info['cpu']},"
        f" load {info['load_average_at_start'][0]:.1f}"
    )
    template = f"{common.DB_PREFIX}template_{os.getpid()}"
    common.admin_sql(f'CREATE DATABASE "{template}"')
    rows: list[Row] = []
    failures: dict[str, str] = {}
    seconds: dict[str, float] = {}
    try:
        common.log(f"migrating the template database {template}")
        common.migrate(template)
        env = {**os.environ, "BENCH_TEMPLATE_DB": template}
        # both HTTP rows share one database and one gunicorn when both are selected
        plan: list[tuple[str, str, list[str]]] = []
        for name in selected:
            module, extra = ROWS[name]
            if name in ("http", "contended") and "http" in selected and "contended" in selected:
                if name == "contended":
                    continue
                extra = ["--part", "all"]
                name = "api"
            plan.append((name, module, extra))
        for name, module, extra in plan:
            common.log(f"=== {name} ({module})")
            with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
                result_file = f.name
            t0 = time.perf_counter()
            cmd = [common.PYTHON, "-m", module, *extra, "--json", result_file, *(["--quick"] if args.quick else [])]
            proc = subprocess.run(cmd, cwd=common.ROOT, env=env)
            seconds[name] = round(time.perf_counter() - t0, 1)
            try:
                data = json.loads(Path(result_file).read_text() or "[]")
            except json.JSONDecodeError:
                data = []
            os.unlink(result_file)
            if proc.returncode != 0 or not data:
                failures[name] = f"exit {proc.returncode}"
                rows.append(Row(name, f"{name}: FAILED (exit {proc.returncode}, see the output above)", "—"))
                continue
            keys = {f.name for f in fields(Row)}
            rows += [Row(**{k: v for k, v in item.items() if k in keys}) for item in data]
            common.log(f"=== {name}: {seconds[name]:.0f} s")
    finally:
        common.drop_database(template)

    finished = dt.datetime.now(dt.UTC)
    info["load_average_at_end"] = list(os.getloadavg())
    print()
    print(
        f"make bench{' (quick: smoke-test sizes, not figures)' if args.quick else ''}: {started:%Y-%m-%d %H:%M} UTC,"
        f" {info['cores']} cores ({info['cpu']}), {info['postgresql'].split(' on ')[0]},"
        f" commit {info['git_commit'][:10]}{' + local changes' if info['git_dirty'] else ''}"
    )
    common.print_table(rows)
    unmet = [r.name for r in rows if r.met is False]
    print(
        f"{len(rows)} rows, {len([r for r in rows if r.met])} targets met, {len(unmet)} not met,"
        f" {len(failures)} row(s) failed; {(finished - started).total_seconds() / 60:.1f} min"
    )
    RESULTS.mkdir(exist_ok=True)
    payload = {
        "date": started.isoformat(timespec="seconds"),
        "finished": finished.isoformat(timespec="seconds"),
        "scale": "quick" if args.quick else "full",
        "selected": selected,
        "machine": info,
        "row_seconds": seconds,
        "failures": failures,
        "rows": [r.__dict__ for r in rows],
    }
    out_path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    print(f"results: {out_path.relative_to(common.ROOT) if out_path.is_relative_to(common.ROOT) else out_path}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
