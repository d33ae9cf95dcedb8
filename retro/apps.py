from django.apps import AppConfig


class RetroConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "retro"

    def ready(self) -> None:
        from . import insight

        insight.register()
