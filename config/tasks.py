"""Enqueue tasks only once the surrounding transaction has committed."""

from django.db import transaction


def enqueue_on_commit(task, *args, **kwargs) -> None:
    """A worker must never see a row that may still roll back, so enqueue after commit."""
    transaction.on_commit(lambda: task.delay(*args, **kwargs))
