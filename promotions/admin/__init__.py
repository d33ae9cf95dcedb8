"""The promotions admin: one module per concern, registered on import."""

from . import activity, campaigns, codes  # noqa: F401
