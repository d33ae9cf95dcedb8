"""Answers name a related object by the key clients know it by, never by a database id.

A user is its ``username``, a member its ``external_id``, a metric, tier or segment its ``code``, a
purchase its bill number (``external_id``), a reward its ``external_id``. ``ModelOut``, the base of
the API's model answers, renders every relation in ``Meta.fields`` to one of these models that way
(read-only); a relation to any other model stays its id, and a field declared on the serializer
wins over both.
"""

from __future__ import annotations

from functools import cache

from django.contrib.auth import get_user_model
from django.db import models
from rest_framework import serializers


@cache
def natural_keys() -> dict[type[models.Model], str]:
    from loyalty.models import Member, Metric, Reward, Segment, Tier, Transaction

    return {
        get_user_model(): "username",
        Member: "external_id",
        Metric: "code",
        Reward: "external_id",
        Segment: "code",
        Tier: "code",
        Transaction: "external_id",
    }


class ModelOut(serializers.ModelSerializer):
    """A model answer whose relations are natural keys (see the module docstring)."""

    def build_relational_field(self, field_name, relation_info):
        key = natural_keys().get(relation_info.related_model)
        if key is None:
            return super().build_relational_field(field_name, relation_info)
        return serializers.SlugRelatedField, {"slug_field": key, "read_only": True, "many": relation_info.to_many}
