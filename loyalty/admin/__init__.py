"""The loyalty admin: one module per concern, registered on import."""

from . import access, accounts, catalog, earning, events, insight, ledger, members, outbox  # noqa: F401
