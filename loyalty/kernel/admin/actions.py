"""Admin actions, written once: buttons on an object's page and bulk actions on a list.

Every action calls a service; the service checks permissions, transitions and four-eyes and raises
a ``DomainError``, which the admin shows as a red message. Nothing here opens a transaction: each
service call is its own (durable) transaction.

- ``ObjectAction``: a button (with an optional form, e.g. a reason) on an object's page. POST only;
  with ``confirm = True`` a GET shows the confirm page with the form. ``available(request, obj)``
  decides whether the button is shown: only where it can succeed for this user and this object.
  Declared on the ModelAdmin (``object_actions``) through ``ObjectActionsMixin``, which adds the
  URLs, the context of the change page (``object_actions``: the available ones by name) and the
  ``page_actions`` that docs/roles.md and the permission matrix test list.
- ``RowButton``: a button on an object's page that runs one of the list's bulk actions on that row
  (the confirm page of the bulk action asks for its form).
- ``bulk_action``: a bulk action, with a form (a reason...) on the confirm page or without one;
  ``run_each`` calls the service per row and reports every row that did not move.
- ``render_confirm``: the one confirm page (``admin/kernel/confirm.html``).

See docs/admin-toolkit.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.http import url_has_allowed_host_and_scheme

from loyalty.exceptions import DomainError
from loyalty.forms import form_errors_text

CONFIRM_TEMPLATE = "admin/kernel/confirm.html"
# A bulk action calls one service per row inside the request: keep it bounded.
MAX_ROWS_PER_ACTION = 500


@dataclass(frozen=True)
class PageAction:
    """A button or form on an admin page that changes something (not in the list's action menu),
    with the permissions its view checks. docs/roles.md lists them per role (``manage.py
    roles_doc``), and tests/test_permission_matrix.py posts to each as every role to prove the
    declaration. ``ObjectAction`` declares its own; this is for the few hand-written pages."""

    url_name: str  # without the "admin:" namespace
    label: str
    perms: tuple[str, ...]
    on_object: bool = True  # the URL takes the object's id; otherwise ``kwargs``
    kwargs: tuple[tuple[str, str], ...] = ()


@dataclass
class Done:
    """What an action's ``run`` may return instead of a plain success message."""

    message: str
    level: int = messages.SUCCESS
    redirect_to: Any = None  # an object (its change page) or a URL; default: the action's object


class ObjectAction:
    """One button on an object's admin page. Subclass (or instantiate with keyword arguments) and
    implement ``run``; list it in the ModelAdmin's ``object_actions``.

    ``permissions`` are checked with ``user.has_perm`` on top of the ModelAdmin's view permission
    of the object; the service checks them again. ``refused`` starts the red message when the form
    is invalid or the service refuses ("Not published. <reason>").
    """

    name: str = ""  # the URL name is "<app>_<model>_<name>" (or ``url_name``)
    label: str = ""  # the button; docs/roles.md shows ``roles_label``
    roles_label: str = ""
    permissions: tuple[str, ...] = ()
    view_permission: bool = True  # needs the view permission of the object (and names it in roles.md)
    route: str = ""  # default "<path:object_id>/<name with dashes>/"
    url_name: str = ""
    on_object: bool = True  # False: the URL has no object id, ``get_object`` finds it in the POST
    form_class: type[forms.Form] | None = None
    form_prefix: str | None = None
    refused: str = "Nothing changed."
    anchor: str = ""  # appended to the redirect (a panel of the page)
    confirm: bool = False  # a GET shows the confirm page with the form; otherwise GET is 405
    title: str = ""
    intro: str = ""
    form_id: str = ""

    def __init__(self, **attrs: Any) -> None:
        for key, value in attrs.items():
            if not hasattr(type(self), key):
                raise TypeError(f"{type(self).__name__} has no attribute {key!r}")
            setattr(self, key, value)

    # --- declaration ------------------------------------------------------------------------------
    def full_url_name(self, opts) -> str:
        return self.url_name or f"{opts.app_label}_{opts.model_name}_{self.name}"

    def url_pattern(self, model_admin, view: Callable) -> Any:
        route = self.route or (
            f"<path:object_id>/{self.name.replace('_', '-')}/" if self.on_object else f"{self.name.replace('_', '-')}/"
        )
        return path(route, model_admin.admin_site.admin_view(view), name=self.full_url_name(model_admin.opts))

    def page_action(self, opts) -> PageAction:
        """What docs/roles.md and the permission matrix know of this action (``opts``: the model's
        ``_meta``)."""
        view = (f"{opts.app_label}.view_{opts.model_name}",) if self.view_permission else ()
        return PageAction(
            self.full_url_name(opts),
            self.roles_label or self.label,
            (*view, *self.permissions),
            on_object=self.on_object,
        )

    def url(self, model_admin, obj) -> str:
        args = [obj.pk] if self.on_object else []
        return reverse(f"admin:{self.full_url_name(model_admin.opts)}", args=args)

    # --- who, on what -----------------------------------------------------------------------------
    def has_permission(self, request, obj) -> bool:
        """The user's permissions (``obj`` is None when the view asks, before finding the object)."""
        return all(request.user.has_perm(perm) for perm in self.permissions)

    def available(self, request, obj) -> bool:
        """Show the button? Only where the action can succeed for this user and this object;
        subclasses narrow it to the object's state. The view itself checks ``has_permission``
        only: the service decides the rest and says why."""
        return self.has_permission(request, obj)

    def get_object(self, model_admin, request, object_id):
        obj = model_admin.get_object(request, unquote(object_id)) if object_id is not None else None
        if obj is None:
            raise Http404(f"No such {model_admin.opts.verbose_name}.")
        if self.view_permission and not model_admin.has_view_or_change_permission(request, obj):
            raise PermissionDenied
        return obj

    # --- the form, the service, where to go -------------------------------------------------------
    def form_kwargs(self, request, obj) -> dict[str, Any]:
        return {}

    def get_form(self, request, obj, data=None) -> forms.Form | None:
        if self.form_class is None:
            return None
        return self.form_class(data, prefix=self.form_prefix, **self.form_kwargs(request, obj))

    def run(self, request, obj, data: dict[str, Any]) -> str | Done | None:
        """Call the service; return the success message (or a ``Done``). A ``DomainError`` is
        shown as "<refused> <detail>"."""
        raise NotImplementedError

    def invalid_message(self, request, obj, form) -> str:
        return f"{self.refused} {form_errors_text(form)}"

    def refused_message(self, request, obj, data: dict[str, Any], exc: DomainError) -> str:
        return f"{self.refused} {exc.detail}"

    def back_url(self, model_admin, request, obj) -> str:
        opts = obj._meta
        url = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
        return url + (f"#{self.anchor}" if self.anchor else "")

    def confirm_context(self, request, obj) -> dict[str, Any]:
        """Extra context of the confirm page (``intro``, ``objects``...)."""
        return {}

    # --- the view ---------------------------------------------------------------------------------
    def view(self, model_admin, request, object_id=None) -> HttpResponse:
        allowed = ["GET", "POST"] if self.confirm else ["POST"]
        if request.method not in allowed:
            return HttpResponseNotAllowed(allowed)
        if not self.has_permission(request, None):
            raise PermissionDenied
        obj = self.get_object(model_admin, request, object_id)
        back = self.back_url(model_admin, request, obj)
        posted = request.method == "POST"
        form = self.get_form(request, obj, request.POST if posted else None)
        if not posted or (form is not None and not form.is_valid()):
            if self.confirm:
                return self.render(model_admin, request, obj, form, back)
            model_admin.message_user(request, self.invalid_message(request, obj, form), messages.ERROR)
            return HttpResponseRedirect(back)
        data = form.cleaned_data if form is not None else {}
        try:
            result = self.run(request, obj, data)
        except DomainError as exc:
            model_admin.message_user(request, self.refused_message(request, obj, data, exc), messages.ERROR)
            return self.render(model_admin, request, obj, form, back) if self.confirm else HttpResponseRedirect(back)
        done = result if isinstance(result, Done) else Done(result or "Done.")
        model_admin.message_user(request, done.message, done.level)
        log_action(model_admin, request, obj, f"{self.label.rstrip('…')}: {done.message}")
        target = done.redirect_to
        if target is None:
            return HttpResponseRedirect(back)
        if isinstance(target, str):
            return HttpResponseRedirect(target)
        return HttpResponseRedirect(self.back_url(model_admin, request, target))

    def render(self, model_admin, request, obj, form, back) -> TemplateResponse:
        context = {
            "title": self.title or f"{self.label.rstrip('…')}: {obj}",
            "intro": self.intro,
            "objects": [obj],
            "form": form,
            "form_id": self.form_id,
            "button": self.label.rstrip("…"),
            "cancel_url": back,
            **self.confirm_context(request, obj),
        }
        return render_confirm(model_admin, request, context)


@dataclass(frozen=True)
class RowButton:
    """A button on an object's page that runs the list's bulk action ``action`` on this row."""

    action: str
    label: str
    available: Callable[[Any, Any], bool] = lambda request, obj: True


class ObjectActionsMixin:
    """Adds a ModelAdmin's ``object_actions`` (their URLs, their buttons on the change page) and
    its ``row_buttons``. The change form's context gets ``object_actions`` (name -> {"url",
    "label", "form"}) with the actions available for this user and object, and ``row_buttons``."""

    object_actions: Sequence[ObjectAction] = ()
    row_buttons: Sequence[RowButton] = ()
    extra_page_actions: Sequence[PageAction] = ()

    def get_object_actions(self) -> list[ObjectAction]:
        return list(self.object_actions)

    @property
    def page_actions(self) -> tuple[PageAction, ...]:
        return (*(a.page_action(self.opts) for a in self.object_actions), *self.extra_page_actions)

    def get_urls(self):
        def bind(action: ObjectAction):
            def view(request, object_id=None):
                return action.view(self, request, object_id)

            return view

        return [action.url_pattern(self, bind(action)) for action in self.get_object_actions()] + super().get_urls()

    def available_object_actions(self, request, obj) -> dict[str, dict[str, Any]]:
        return {
            action.name: {"url": action.url(self, obj), "label": action.label, "form": action.get_form(request, obj)}
            for action in self.get_object_actions()
            if action.on_object and action.available(request, obj)
        }

    def available_row_buttons(self, request, obj) -> list[dict[str, str]]:
        offered = self.get_actions(request)
        return [
            {"name": b.action, "label": b.label}
            for b in self.row_buttons
            if b.action in offered and b.available(request, obj)
        ]

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and obj.pk:
            context["object_actions"] = self.available_object_actions(request, obj)
            if self.row_buttons:
                context["row_buttons"] = self.available_row_buttons(request, obj)
                context["actions_url"] = reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist")
                context["action_checkbox_name"] = helpers.ACTION_CHECKBOX_NAME
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)


# --- bulk actions ---------------------------------------------------------------------------------


def perm_checker(perm: str) -> Callable[[Any, Any], bool]:
    """A ModelAdmin's ``has_<name>_permission`` for ``@admin.action(permissions=[name])``."""

    def check(self, request, obj=None) -> bool:
        return request.user.has_perm(perm)

    return check


def log_action(model_admin, request, obj, message: str) -> None:
    """A LogEntry for a service action done through our screens, so that the admin's "Recent
    actions" and the object's history list it beside Django's own add/change/delete."""
    if getattr(obj, "pk", None) is not None and getattr(request.user, "pk", None) is not None:
        model_admin.log_change(request, obj, message[:2000])


def run_each(
    model_admin,
    request,
    objects: Iterable[Any],
    op: Callable[[Any], Any],
    *,
    done: str,
    failed: str = "{label}: {detail}",
    grouped: str = "",
    label: Callable[[Any], str] = str,
    empty: str = "",
    outcome: Callable[[Any], str] | None = None,
) -> tuple[list, list]:
    """Call ``op`` (one service call, its own transaction) for every object and report: ``done``
    once for what moved (``{n}``, ``{s}`` plural, ``{ids}``), every refusal with the service's
    reason (``failed`` per row with ``{label}``, ``{pk}``, ``{detail}``, ``{code}``; or ``grouped``,
    one message with ``{n}`` and ``{items}``), and ``empty`` when nothing was selected.

    ``outcome(result)`` names what the service did when one call can end in more than one way
    (a rollback executed, or waiting for a second person): what moved is then reported once per
    outcome, ``done`` formatted with ``{outcome}``."""
    moved, refused, outcomes = [], [], {}
    for obj in objects:
        try:
            result = op(obj)
        except DomainError as exc:
            refused.append((obj, exc))
        else:
            moved.append(obj)
            outcomes.setdefault(outcome(result) if outcome else "", []).append(obj)
    for what, objs in outcomes.items():
        ids = ", ".join(f"#{obj.pk}" for obj in objs)
        text = done.format(n=len(objs), s="" if len(objs) == 1 else "s", ids=ids, outcome=what)
        model_admin.message_user(request, text, messages.SUCCESS)
        for obj in objs:
            log_action(model_admin, request, obj, text.replace(ids, f"#{obj.pk}"))
    if refused and grouped:
        items = "; ".join(f"#{obj.pk}: {exc.detail}" for obj, exc in refused)
        model_admin.message_user(request, grouped.format(n=len(refused), items=items), messages.ERROR)
    elif refused:
        for obj, exc in refused:
            text = failed.format(label=label(obj), pk=obj.pk, detail=exc.detail, code=exc.code)
            model_admin.message_user(request, text, messages.ERROR)
    if not moved and not refused and empty:
        model_admin.message_user(request, empty, messages.WARNING)
    return moved, refused


def bounded(model_admin, request, queryset) -> list | None:
    """The selected rows, or None with a message when there are too many."""
    if not queryset.query.order_by:
        queryset = queryset.order_by("pk")
    rows = list(queryset[: MAX_ROWS_PER_ACTION + 1])
    if len(rows) > MAX_ROWS_PER_ACTION:
        model_admin.message_user(
            request,
            f"Select at most {MAX_ROWS_PER_ACTION} rows per action (narrow the filter). Nothing changed.",
            messages.WARNING,
        )
        return None
    return rows


def safe_next(request) -> HttpResponseRedirect | None:
    """Back to where a change page's button came from (``next``), if it is on this site."""
    target = request.POST.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return HttpResponseRedirect(target)
    return None


def confirmed(request) -> bool:
    """The confirm page was posted (``apply``; retro's older form posts ``confirm=yes``)."""
    return "apply" in request.POST or request.POST.get("confirm") == "yes"


def bulk_action(
    *,
    name: str,
    description: str,
    permission: str,
    run: Callable[..., Any],
    done: str,
    form_class: type[forms.Form] | None = None,
    failed: str = "{label}: {detail}",
    grouped: str = "",
    label: Callable[[Any], str] = str,
    empty: str = "",
    intro: str = "",
    button: str | None = None,
    title: str | None = None,
    prepare: Callable[[Any], Any] | None = None,
    describe: Callable[[Any], str] | None = None,
    form_id: str = "",
    outcome: Callable[[Any], str] | None = None,
):
    """A list action that calls a service for each selected row: ``run(obj, user, data)`` with the
    confirm page's form (``form_class``, e.g. a reason), or ``run(obj, user)`` without a form.
    ``prepare(queryset)`` adds select_related/ordering; the confirm page lists the rows with the
    ModelAdmin's ``action_row_template`` or ``describe(obj)``."""

    def action(model_admin, request, queryset):
        rows = bounded(model_admin, request, prepare(queryset) if prepare else queryset)
        if rows is None:
            return safe_next(request)

        def report(op):
            run_each(
                model_admin,
                request,
                rows,
                op,
                done=done,
                failed=failed,
                grouped=grouped,
                label=label,
                empty=empty,
                outcome=outcome,
            )

        if form_class is None:
            report(lambda obj: run(obj, request.user))
            return safe_next(request)
        form = form_class(request.POST if confirmed(request) else None)
        if form.is_bound:
            if form.is_valid():
                report(lambda obj: run(obj, request.user, form.cleaned_data))
                return safe_next(request)
            model_admin.message_user(request, f"Nothing changed. {form_errors_text(form)}", messages.ERROR)
        context = {
            "title": title or description.rstrip("…"),
            "intro": intro,
            "objects": rows,
            "descriptions": [describe(obj) for obj in rows] if describe else None,
            "row_template": getattr(model_admin, "action_row_template", ""),
            "form": form,
            "form_id": form_id,
            "action": name,
            "button": button or (title or description).rstrip("…"),
            "next": request.POST.get("next", ""),
            "cancel_url": request.POST.get("next") or request.get_full_path(),
        }
        return render_confirm(model_admin, request, context)

    action.__name__ = name
    return admin.action(description=description, permissions=[permission])(action)


def render_confirm(model_admin, request, context: dict[str, Any]) -> TemplateResponse:
    """The one confirm page: what is about to change, the form (a reason...), the button."""
    opts = model_admin.opts
    full = {
        **model_admin.admin_site.each_context(request),
        "subtitle": None,
        "opts": opts,
        "app_label": opts.app_label,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "media": model_admin.media,
        **context,
    }
    request.current_app = model_admin.admin_site.name
    return TemplateResponse(request, CONFIRM_TEMPLATE, full)
