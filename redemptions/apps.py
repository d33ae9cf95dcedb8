from loyalty.apps import ContributingAppConfig


class RedemptionsConfig(ContributingAppConfig):
    default = True
    name = "redemptions"
