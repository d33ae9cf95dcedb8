"""The loyalty admin: one module per concern, registered on import."""

from . import catalog, earning, ledger, members  # noqa: F401
