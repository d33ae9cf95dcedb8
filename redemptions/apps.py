from django.apps import AppConfig


class RedemptionsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "redemptions"

    def ready(self) -> None:
        from .events import register

        register()  # how this app's objects appear in events and webhooks
        from . import insight

        insight.register()
