"""One extension point the apps contribute to: queues and figures on the operations home, member
page panels, demo-seed steps, rollups.

``loyalty`` imports no other app, so the apps register what they add (from their
``AppConfig.ready``, or from a module the registry discovers when first read). Entries are keyed:
registering a key again replaces the entry (a test may swap one in). They are listed by their
``order`` (0 when they have none), then by key.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from django.utils.module_loading import autodiscover_modules

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, *, key: str = "key", discover: str = "") -> None:
        self._entries: dict[str, T] = {}
        self._key = key
        self._discover = discover  # e.g. "demo": every installed app's demo.py, imported before listing

    def register(self, entry: T) -> T:
        self._entries[getattr(entry, self._key)] = entry
        return entry

    def entries(self) -> list[T]:
        if self._discover:
            autodiscover_modules(self._discover)
        return sorted(self._entries.values(), key=lambda e: (getattr(e, "order", 0), getattr(e, self._key)))

    def __getitem__(self, key: str) -> T:
        return self._entries[key]
