"""Helpers shared by the promotions admin modules."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from django.contrib import messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from loyalty.exceptions import DomainError

from ..forms import ReasonForm


def promo_url(model_name: str, view: str = "change", *args, app_label: str = "promotions") -> str:
    return reverse(f"admin:{app_label}_{model_name}_{view}", args=args)


def link(model_name: str, pk, label, *, app_label: str = "promotions") -> str:
    """A link to an object's change page without loading the object."""
    if pk is None:
        return "-"
    return format_html('<a href="{}">{}</a>', promo_url(model_name, "change", pk, app_label=app_label), label)


def lookup_url(code_text: str) -> str:
    from urllib.parse import urlencode

    return promo_url("code", "lookup") + "?" + urlencode({"code": code_text})


def short_time(value) -> str:
    """A compact local time for dense lists (the admin's long format wraps)."""
    from django.utils import timezone

    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M") if value else "-"


def progress_html(generated: int, count: int) -> str:
    pct = int(generated * 100 / count) if count else 0
    return format_html(
        '<span class="batch-progress" title="{}%"><progress max="{}" value="{}"></progress> {}/{} ({}%)</span>',
        pct,
        count,
        generated,
        f"{generated:,}",
        f"{count:,}",
        pct,
    )


def apply_each(
    modeladmin,
    request,
    objects: Iterable,
    operation: Callable,
    *,
    done: str,
    label: Callable = str,
) -> int:
    """Run ``operation(obj)`` per object; refusals are reported per row. Returns how many succeeded."""
    ok = 0
    for obj in objects:
        try:
            operation(obj)
        except DomainError as exc:
            modeladmin.message_user(request, f"{label(obj)}: {exc.detail}", messages.ERROR)
        else:
            ok += 1
    if ok:
        modeladmin.message_user(request, done.format(n=ok, s="" if ok == 1 else "s"), messages.SUCCESS)
    return ok


def reason_step(
    modeladmin,
    request,
    queryset: QuerySet,
    *,
    action: str,
    title: str,
    intro: str,
    button: str,
    limit: int = 1000,
    describe: Callable = str,
):
    """The intermediate page of an action that needs a reason.

    Returns ``(objects, reason)`` once the reason was posted; otherwise what the action should
    return: the page, or None after an error message.
    """
    objects = list(queryset[: limit + 1])
    if len(objects) > limit:
        modeladmin.message_user(
            request, f"Select at most {limit} rows for this action (narrow the filter).", messages.ERROR
        )
        return None
    form = ReasonForm(request.POST if "apply" in request.POST else None)
    if "apply" in request.POST and form.is_valid():
        return objects, form.cleaned_data["reason"]
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "intro": intro,
        "button": button,
        "objects": [describe(o) for o in objects],
        "selected": [o.pk for o in objects],
        "form": form,
        "action": action,
        "opts": modeladmin.model._meta,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "select_across": request.POST.get("select_across", "0"),
        "media": modeladmin.media,
    }
    request.current_app = modeladmin.admin_site.name
    return TemplateResponse(request, "admin/promotions/confirm_action.html", context)
