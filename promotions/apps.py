from loyalty.apps import ContributingAppConfig


class PromotionsConfig(ContributingAppConfig):
    default = True
    name = "promotions"
