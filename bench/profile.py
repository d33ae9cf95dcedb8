"""Summarise a py-spy profile of the gunicorn workers (``python -m bench.api --profile <row>``).

py-spy records every worker (``--subprocesses --idle --format raw``: one line per distinct stack,
frames root first, separated by ``;``, then the sample count). Only samples inside a request
(under gunicorn's ``handle_request``) count; idle samples there are waits (the database, Redis).
Prints the wall time per request inside the worker, where it goes by layer, and the top functions.

    python -m bench.profile bench/results/profile-redeem.txt [--requests N] [--rate 200]
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from pathlib import Path

FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")

# The first matching layer (innermost frame first) names a sample: where the time is spent.
LAYERS = [
    ("database: waiting for PostgreSQL", ("psycopg/", "psycopg_binary", "psycopg_pool")),
    ("redis (cache, throttle, broker)", ("redis/", "kombu/", "celery/")),
    ("ORM: building and compiling SQL", ("django/db/models/", "django/db/backends/")),
    ("history rows (simple-history)", ("simple_history/",)),
    ("DRF (parsing, serializers, rendering)", ("rest_framework/",)),
    ("Django auth and permissions", ("django/contrib/auth/",)),
    ("Django (request, middleware, other)", ("django/",)),
    ("project code", ("loyalty/", "promotions/", "redemptions/", "retro/", "config/")),
    ("gunicorn / other", ("",)),
]
PROJECT = ("loyalty/", "promotions/", "redemptions/", "retro/", "config/")


def parse(path: Path) -> list[tuple[list[tuple[str, str]], int]]:
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = []
        for part in stack.split(";"):
            m = FRAME.match(part.strip())
            frames.append((m["func"], m["file"]) if m else (part.strip(), ""))
        stacks.append((frames, int(count)))
    return stacks


def layer_of(files: list[str]) -> str:
    """The layer of the innermost frame that belongs to one (stdlib frames belong to their caller)."""
    for file in reversed(files):
        for name, markers in LAYERS[:-1]:
            if any(m in file for m in markers):
                return name
    return LAYERS[-1][0]


def scaffolding(key: str) -> bool:
    """Frames every request passes through (the process, gunicorn, middleware wrappers)."""
    return key.startswith(("process ", "<module>")) or any(
        m in key for m in ("gunicorn/", "(django/core/handlers/", "(django/utils/deprecation.py", "Middleware")
    )


def short(file: str) -> str:
    for marker in ("site-packages/", "/bench/", "/wt/"):
        if marker in file:
            file = file.split(marker, 1)[1]
    return file


def summarize(path: Path, *, requests: int | None = None, rate: int = 200) -> dict:
    stacks = parse(path)
    in_request = [(f, n) for f, n in stacks if any(func.endswith("handle_request") for func, _ in f)]
    total = sum(n for _, n in in_request)
    layers: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    ours: Counter[str] = Counter()
    for frames, n in in_request:
        files = [short(file) for _, file in frames]
        layers[layer_of(files)] += n
        seen = set()
        for func, file in frames:
            key = f"{func} ({short(file)})"
            if key not in seen:
                seen.add(key)
                inclusive[key] += n
                if short(file).startswith(PROJECT) and not scaffolding(key):
                    ours[key] += n
        func, file = frames[-1]
        leaf[f"{func} ({short(file)})"] += n
    pct = (lambda n: round(100 * n / total, 1)) if total else (lambda n: 0.0)
    report = {
        "profile": str(path),
        "samples_in_requests": total,
        "requests": requests,
        "ms_per_request_in_worker": round(1000 * total / rate / requests, 1) if requests else None,
        "by_layer_pct": {name: pct(n) for name, n in layers.most_common()},
        "top_project_functions_pct": {k: pct(n) for k, n in ours.most_common(15)},
        "top_inclusive_pct": {k: pct(n) for k, n in inclusive.most_common(60) if not scaffolding(k)} if total else {},
        "top_leaf_pct": {k: pct(n) for k, n in leaf.most_common(12)},
    }
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--requests", type=int)
    parser.add_argument("--rate", type=int, default=200)
    args = parser.parse_args()
    print(json.dumps(summarize(args.path, requests=args.requests, rate=args.rate), indent=2))


if __name__ == "__main__":
    main()
