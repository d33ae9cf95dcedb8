from django.apps import AppConfig


class RedemptionsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "redemptions"

    def ready(self) -> None:
        from . import insight

        insight.register()
