from importlib import import_module

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class ContributingAppConfig(AppConfig):
    """An app that plugs into loyalty: on ready, its ``events.register()`` says how its objects
    appear in events and webhooks, and its ``insight.register()`` adds its queues and figures.

    Defined here rather than in ``loyalty.kernel``: app configs load before the models, and the
    kernel imports the auth models. ``default = False`` keeps Django from taking this base as the
    config of an app whose ``apps.py`` imports it; each subclass says ``default = True``.
    """

    default = False
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        import_module(f"{self.name}.events").register()
        import_module(f"{self.name}.insight").register()


class LoyaltyConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "loyalty"
    verbose_name = "Loyalty"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the deploy checks)
        from .events.presenters import register as register_presenters
        from .insight import contributions
        from .roles import sync_role_permissions

        register_presenters()

        post_migrate.connect(sync_role_permissions, dispatch_uid="loyalty.sync_role_permissions")
        contributions.register()
