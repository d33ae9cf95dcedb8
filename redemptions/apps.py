from django.apps import AppConfig


class RedemptionsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "redemptions"
