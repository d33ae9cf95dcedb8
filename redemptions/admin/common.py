"""Helpers shared by the redemptions admin: per-row service calls with a report, intermediate
action pages, cheap date filters and links."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe

from loyalty.exceptions import DomainError
from loyalty.forms import form_errors_text

# A bulk action calls one service per row inside the request: keep it bounded.
MAX_ROWS_PER_ACTION = 500


def perm_checker(perm: str) -> Callable[[Any, Any], bool]:
    def check(self, request, obj=None) -> bool:
        return request.user.has_perm(perm)

    return check


def run_each(modeladmin, request, objects: Iterable[Any], op: Callable[[Any], Any], *, verb: str) -> tuple[list, list]:
    """Call ``op`` (one service call, its own transaction) for every object; report what moved and,
    separately, every row that could not move with the service's reason. Nothing fails silently."""
    done, failed = [], []
    for obj in objects:
        try:
            op(obj)
        except DomainError as exc:
            failed.append((obj.pk, exc.detail))
        else:
            done.append(obj.pk)
    if done:
        modeladmin.message_user(
            request, f"{verb.capitalize()} {len(done)}: {', '.join(f'#{pk}' for pk in done)}.", messages.SUCCESS
        )
    if failed:
        modeladmin.message_user(
            request,
            f"{len(failed)} could not be {verb}: " + "; ".join(f"#{pk}: {detail}" for pk, detail in failed),
            messages.ERROR,
        )
    return done, failed


def bounded(modeladmin, request, queryset: QuerySet) -> list | None:
    """The selected rows (ordered by id), or None with a message when there are too many."""
    rows = list(queryset.order_by("pk")[: MAX_ROWS_PER_ACTION + 1])
    if len(rows) > MAX_ROWS_PER_ACTION:
        modeladmin.message_user(
            request,
            f"Select at most {MAX_ROWS_PER_ACTION} rows per action (use an import for bulk updates). Nothing changed.",
            messages.WARNING,
        )
        return None
    return rows


def safe_next(request) -> HttpResponseRedirect | None:
    target = request.POST.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return HttpResponseRedirect(target)
    return None


def form_action(
    *,
    name: str,
    description: str,
    permission: str,
    form_class: type[forms.Form],
    verb: str,
    run: Callable[[Any, Any, dict], Any],
    intro: str = "",
    button: str | None = None,
):
    """A bulk action with an intermediate page (a form, e.g. a reason), then ``run(obj, user, data)``
    for each selected row through ``run_each``."""

    def action(modeladmin, request, queryset):
        rows = bounded(modeladmin, request, queryset)
        if rows is None:
            return safe_next(request)
        if "apply" in request.POST:
            form = form_class(request.POST)
            if form.is_valid():
                run_each(modeladmin, request, rows, lambda obj: run(obj, request.user, form.cleaned_data), verb=verb)
                return safe_next(request)
            modeladmin.message_user(request, f"Nothing changed. {form_errors_text(form)}", messages.ERROR)
        else:
            form = form_class()
        return render_action_page(
            modeladmin, request, rows, form=form, action=name, title=description, intro=intro, button=button
        )

    action.__name__ = name
    return admin.action(description=description, permissions=[permission])(action)


def simple_action(*, name: str, description: str, permission: str, verb: str, run: Callable[[Any, Any], Any]):
    """A bulk action without a form: ``run(obj, user)`` for each row."""

    def action(modeladmin, request, queryset):
        rows = bounded(modeladmin, request, queryset)
        if rows is not None:
            run_each(modeladmin, request, rows, lambda obj: run(obj, request.user), verb=verb)
        return safe_next(request)

    action.__name__ = name
    return admin.action(description=description, permissions=[permission])(action)


def render_action_page(modeladmin, request, rows, *, form, action, title, intro="", button=None):
    opts = modeladmin.model._meta
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "subtitle": None,
        "opts": opts,
        "app_label": opts.app_label,
        "form": form,
        "objects": rows,
        "action": action,
        "intro": intro,
        "button": button or title,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "next": request.POST.get("next", ""),
        "row_template": getattr(modeladmin, "action_row_template", "admin/redemptions/_action_rows.html"),
    }
    request.current_app = modeladmin.admin_site.name
    return TemplateResponse(request, "admin/redemptions/action_form.html", context)


class CreatedWithinFilter(admin.SimpleListFilter):
    """Last 7/30/90 days: one range condition on the indexed created_at (no date_hierarchy scans)."""

    title = "created"
    parameter_name = "created_within"
    DAYS = {"1": 1, "7": 7, "30": 30, "90": 90}

    def lookups(self, request, model_admin):
        return [("1", "Last 24 hours"), ("7", "Last 7 days"), ("30", "Last 30 days"), ("90", "Last 90 days")]

    def queryset(self, request, queryset):
        days = self.DAYS.get(self.value() or "")
        if days:
            return queryset.filter(created_at__gte=timezone.now() - dt.timedelta(days=days))
        return queryset


def link(url_name: str, pk: Any, label: Any) -> str:
    if pk is None:
        return "-"
    return format_html('<a href="{}">{}</a>', reverse(url_name, args=[pk]), label)


def changelist_url(url_name: str, **params: Any) -> str:
    from urllib.parse import urlencode

    return reverse(url_name) + ("?" + urlencode(params) if params else "")


class FastActionCheckboxMixin:
    """Django renders each row's checkbox through the form widget templates: about a third of a
    50-row page's render time. The same HTML, formatted directly."""

    @admin.display(description=mark_safe('<input type="checkbox" id="action-toggle">'))
    def action_checkbox(self, obj):
        return format_html(
            '<input type="checkbox" name="{}" value="{}" class="action-select"'
            ' aria-label="Select this object for an action - {}">',
            helpers.ACTION_CHECKBOX_NAME,
            obj.pk,
            obj,
        )
