"""The limit the HTTP rows are compared with: a bare Django + DRF view under the same gunicorn and
settings that does one row lock + one update + one insert in one transaction.

It authenticates like the real endpoints (DRF's authentication classes from the settings: the API
key is looked up) and parses JSON; it has no permission model beyond "authenticated", no throttle,
no serializer and no history. Its tables are made by ``create_tables`` (plain SQL; no migration).
"""

from __future__ import annotations

from django.db import connection, transaction
from django.http import HttpResponse
from rest_framework import status
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView


def create_tables(rows: int) -> None:
    with connection.cursor() as cur:
        cur.execute("CREATE TABLE bench_counter (id bigint PRIMARY KEY, n bigint NOT NULL DEFAULT 0)")
        cur.execute(
            "CREATE TABLE bench_event (id bigserial PRIMARY KEY, counter_id bigint NOT NULL,"
            " amount bigint NOT NULL, created_at timestamptz NOT NULL DEFAULT now())"
        )
        cur.execute("INSERT INTO bench_counter (id) SELECT g FROM generate_series(1, %s) g", [rows])


def ping(request):
    return HttpResponse("ok")


class BareTransaction(APIView):
    """POST {"id": <counter>, "amount": <n>}: lock the counter row, add to it, log an event row."""

    permission_classes = [IsAuthenticated]
    throttle_classes: list = []

    def post(self, request):
        counter_id = int(request.data["id"])
        amount = int(request.data.get("amount", 1))
        with transaction.atomic(), connection.cursor() as cur:
            cur.execute("SELECT n FROM bench_counter WHERE id = %s FOR UPDATE", [counter_id])
            if cur.fetchone() is None:
                return Response({"code": "not_found"}, status=status.HTTP_404_NOT_FOUND)
            cur.execute("UPDATE bench_counter SET n = n + %s WHERE id = %s", [amount, counter_id])
            cur.execute(
                "INSERT INTO bench_event (counter_id, amount) VALUES (%s, %s) RETURNING id", [counter_id, amount]
            )
            event_id = cur.fetchone()[0]
        return Response({"id": event_id, "counter": counter_id}, status=status.HTTP_201_CREATED)
