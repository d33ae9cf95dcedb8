"""Django's own account screens (users, groups) and django-axes' sign-in screens, with the list guard.

Registered by django.contrib.auth, which comes before ``loyalty`` in INSTALLED_APPS; re-registered
here so that ``?date_joined__year=0`` is a "?e=1" redirect, not a server error, on these lists too.
API keys have their own screen (``loyalty.admin.access``); DRF's token app is not installed, so
no screen can show a key.
"""

from __future__ import annotations

from axes import admin as axes_admin
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib import admin, messages
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User

from loyalty.kernel.admin import ChangeListGuardMixin, PageAction

from .. import services

_USER_PAGE_ACTIONS = (PageAction("auth_user_password_change", "Change password (user page)", ("auth.change_user",)),)

for model, model_admin, page_actions in ((User, UserAdmin, _USER_PAGE_ACTIONS), (Group, GroupAdmin, ())):
    admin.site.unregister(model)
    admin.site.register(
        model, type(model_admin.__name__, (ChangeListGuardMixin, model_admin), {"page_actions": page_actions})
    )


# --- django-axes: sign-in attempts (unlock), successful and failed sign-ins ------------------------
# Re-registered with the list guard and without date_hierarchy (its year links are one query per
# year on every page); "Unlock selected" goes through ``services.unlock_sign_in``.


class _AccessAttemptAdmin(ChangeListGuardMixin, axes_admin.AccessAttemptAdmin):
    date_hierarchy = None
    actions = ["unlock_selected"]

    @admin.action(description="Unlock selected (forget their failed sign-ins)", permissions=["delete"])
    def unlock_selected(self, request, queryset):
        count = services.unlock_sign_in(attempts=queryset, actor=request.user, reason="Unlocked in the admin")
        self.message_user(request, f"Unlocked {count} sign-in lockout{'s' if count != 1 else ''}.", messages.SUCCESS)


def _guarded(base: type) -> type:
    return type(base.__name__, (ChangeListGuardMixin, base), {"date_hierarchy": None})


for model, model_admin in (
    (AccessAttempt, _AccessAttemptAdmin),
    (AccessLog, _guarded(axes_admin.AccessLogAdmin)),
    (AccessFailureLog, _guarded(axes_admin.AccessFailureLogAdmin)),
):
    if admin.site.is_registered(model):
        admin.site.unregister(model)
    admin.site.register(model, model_admin)
