from loyalty.apps import ContributingAppConfig


class RetroConfig(ContributingAppConfig):
    default = True
    name = "retro"
