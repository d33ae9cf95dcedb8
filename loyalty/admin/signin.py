"""The admin sign-in lockout (django-axes): what a locked-out user sees.

Axes counts failed sign-ins per (username, IP) in the database; at ``AXES_FAILURE_LIMIT`` it
refuses further attempts for ``AXES_COOLOFF_TIME`` and calls ``lockout_response`` (the setting
``AXES_LOCKOUT_CALLABLE``), which shows the admin's own login page with a clear message instead of
Axes' bare text. An administrator lifts a lockout on **Axes → Access attempts**.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.forms.utils import ErrorDict
from django.template.response import TemplateResponse
from django.urls import reverse

logger = logging.getLogger("loyalty.signin")


def lockout_message() -> str:
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    return (
        f"Too many failed sign-ins for this account from your address: signing in is locked for {minutes} "
        "minutes, and each further attempt starts the wait again. Try again later, or ask an administrator "
        "to unlock the account."
    )


def lockout_response(request, original_response=None, credentials=None):
    """The login page, status 429, with the lockout message and nothing signed in."""
    username = (credentials or {}).get("username") or request.POST.get("username", "")
    logger.warning("Sign-in refused: %r is locked out from %s", username, getattr(request, "axes_ip_address", None))
    form = AdminAuthenticationForm(request, data={"username": username})
    # Mark the form invalid without validating it (validating would try the password again).
    form.cleaned_data = {}
    form._errors = ErrorDict()
    form.add_error(None, lockout_message())
    context = {
        **admin.site.each_context(request),
        "title": "Log in",
        "subtitle": None,
        "app_path": reverse("admin:login"),
        "form": form,
        "next": request.POST.get("next") or request.GET.get("next") or reverse("admin:index"),
        "username": "",
    }
    request.current_app = admin.site.name
    response = TemplateResponse(request, "admin/login.html", context, status=settings.AXES_HTTP_RESPONSE_CODE)
    return response.render()  # called from a middleware, after the view: nothing else would render it
