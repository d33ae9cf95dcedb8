"""The project's URLs plus the bench-only baseline (bench/baseline.py)."""

from django.urls import path

from bench.baseline import BareTransaction, ping
from config.urls import urlpatterns as project_urlpatterns

urlpatterns = [
    path("bench/ping", ping),
    path("bench/bare", BareTransaction.as_view()),
    *project_urlpatterns,
]
