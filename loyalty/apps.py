from django.apps import AppConfig
from django.db.models.signals import post_migrate


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
