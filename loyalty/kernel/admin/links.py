"""One way to link from an admin page to another: an object's change page, or a change list
with a filter. Labels are escaped (``format_html``); a missing target shows "-"."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.db import models
from django.urls import reverse
from django.utils.html import format_html


def _info(model: str | models.Model | type[models.Model]) -> str:
    """``"app_label.model_name"``, a model class or an instance -> ``"app_label_model_name"``."""
    if isinstance(model, str):
        return model.replace(".", "_")
    return f"{model._meta.app_label}_{model._meta.model_name}"


def admin_url(model: str | models.Model | type[models.Model], view: str = "change", *args: Any) -> str:
    """``admin_url("loyalty.member", "change", 5)``; for an instance the change page is the default."""
    if isinstance(model, models.Model) and view == "change" and not args:
        args = (model.pk,)
    return reverse(f"admin:{_info(model)}_{view}", args=args)


def changelist_url(model: str | models.Model | type[models.Model], view: str = "changelist", **filters: Any) -> str:
    """A change list (or another list view, e.g. ``"queue"``), filtered:
    ``changelist_url("loyalty.ledgerentry", member__id__exact=5)``."""
    url = reverse(f"admin:{_info(model)}_{view}")
    return url + ("?" + urlencode(filters) if filters else "")


def link(target: str | models.Model | None, label: Any = None, *, pk: Any = None) -> str:
    """A link to a change page: ``link(member)``, or without loading the row
    ``link("promotions.codebatch", f"#{batch_id}", pk=batch_id)``."""
    if target is None or (isinstance(target, str) and pk is None):
        return "-"
    if isinstance(target, models.Model):
        pk = target.pk if pk is None else pk
    return format_html('<a href="{}">{}</a>', admin_url(target, "change", pk), target if label is None else label)


def changelist_link(model: str | models.Model | type[models.Model], label: Any, **filters: Any) -> str:
    return format_html('<a href="{}">{}</a>', changelist_url(model, **filters), label)


def signed(amount: int) -> str:
    return f"{amount:+,d}"
