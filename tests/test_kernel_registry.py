"""loyalty.kernel.registry: what the apps contribute, by key, in order."""

from __future__ import annotations

from dataclasses import dataclass

from loyalty.kernel.registry import Registry


@dataclass(frozen=True)
class Entry:
    key: str
    order: int = 100


@dataclass(frozen=True)
class Named:
    name: str


def test_entries_are_listed_by_order_then_key_and_a_key_registered_again_replaces_its_entry():
    registry: Registry[Entry] = Registry()
    registry.register(Entry("b", 20))
    registry.register(Entry("a", 20))
    registry.register(Entry("z", 10))
    registry.register(Entry("b", 5))  # replaces the first "b"
    assert [(e.key, e.order) for e in registry.entries()] == [("b", 5), ("z", 10), ("a", 20)]
    assert registry["z"] == Entry("z", 10)


def test_entries_without_an_order_are_listed_by_their_key_field():
    registry: Registry[Named] = Registry(key="name")
    for name in ("retro", "purchases", "members"):
        registry.register(Named(name))
    assert [e.name for e in registry.entries()] == ["members", "purchases", "retro"]


def test_a_discovering_registry_imports_every_apps_module_before_listing(monkeypatch):
    imported = []
    monkeypatch.setattr("loyalty.kernel.registry.autodiscover_modules", imported.append)
    Registry(discover="demo").entries()
    assert imported == ["demo"]
