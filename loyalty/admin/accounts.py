"""Django's own account screens (users, groups), with the list guard.

Registered by django.contrib.auth, which comes before ``loyalty`` in INSTALLED_APPS; re-registered
here so that ``?date_joined__year=0`` is a "?e=1" redirect, not a server error, on these lists too.
API keys have their own screen (``loyalty.admin.access``); DRF's token app is not installed, so
no screen can show a key.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User

from .base import ChangeListGuardMixin

for model, model_admin in ((User, UserAdmin), (Group, GroupAdmin)):
    admin.site.unregister(model)
    admin.site.register(model, type(model_admin.__name__, (ChangeListGuardMixin, model_admin), {}))
