"""Django's and DRF's own account screens (users, groups, API tokens), with the list guard.

Registered by django.contrib.auth and rest_framework.authtoken, which come before ``loyalty`` in
INSTALLED_APPS; re-registered here so that ``?date_joined__year=0`` is a "?e=1" redirect, not a
server error, on these lists too.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User
from rest_framework.authtoken.admin import TokenAdmin
from rest_framework.authtoken.models import TokenProxy

from .base import ChangeListGuardMixin

for model, model_admin in ((User, UserAdmin), (Group, GroupAdmin), (TokenProxy, TokenAdmin)):
    admin.site.unregister(model)
    admin.site.register(model, type(model_admin.__name__, (ChangeListGuardMixin, model_admin), {}))
