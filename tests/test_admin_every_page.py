"""Every model in the admin, on demo data, as a superuser and as an auditor: the list, one
object's change page and its history answer 200; junk list parameters are never a server error;
for ids that cannot exist the history page redirects with "does not exist" like Django's own
pages (it used to be a 500 for ``abc``, and for every award)."""

import io

import pytest
from django.contrib import admin
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from simple_history.admin import SimpleHistoryAdmin


@pytest.fixture(params=["admin_user", "auditor_user"])
def demo_client(request, settings):
    """A superuser, and an auditor: view-only, history included (what auditors are for)."""
    settings.DEBUG = True
    user = request.getfixturevalue(request.param)
    call_command("seed_demo", members=10, stdout=io.StringIO())
    client = Client()
    client.force_login(user)
    client.user = user
    return client


@pytest.mark.django_db
def test_every_admin_list_object_and_history_page_answers(demo_client):
    failures = []
    checked_history = 0
    for model, model_admin in admin.site._registry.items():
        name = f"admin:{model._meta.app_label}_{model._meta.model_name}"
        if not demo_client.user.has_perm(f"{model._meta.app_label}.view_{model._meta.model_name}"):
            continue
        changelist = reverse(f"{name}_changelist")
        listing = demo_client.get(changelist)
        singleton = listing.status_code == 302 and listing["Location"].endswith("/change/")  # program settings
        if listing.status_code != 200 and not singleton:
            failures.append((listing.status_code, listing.request["PATH_INFO"]))
        junk_lookups = [
            f"?{f.name}__year={year}"
            for f in model._meta.fields
            if f.get_internal_type() == "DateTimeField"
            for year in (0, 10**20)
        ]
        for junk in [*junk_lookups, "?p=abc", "?o=99", "?q=%25"]:
            r = demo_client.get(changelist + junk)
            if r.status_code >= 500:
                failures.append((r.status_code, r.request["PATH_INFO"] + junk))
        obj = model_admin.get_queryset(listing.wsgi_request).order_by("pk").first()
        pages = []
        if obj is not None:
            pages.append(reverse(f"{name}_change", args=[obj.pk]))
            pages.append(reverse(f"{name}_history", args=[obj.pk]))
            tracked = isinstance(model_admin, SimpleHistoryAdmin)
            version = obj.history.order_by("history_id").first() if tracked else None
            if version is not None:
                pages.append(reverse(f"{name}_simple_history", args=[obj.pk, version.history_id]))
                for impossible in ("abc", "99999999999999999999"):
                    path = reverse(f"{name}_simple_history", args=[obj.pk, impossible])
                    r = demo_client.get(path)
                    if r.status_code != 404:
                        failures.append((r.status_code, path))
            checked_history += tracked
        for path in pages:
            r = demo_client.get(path)
            if r.status_code != 200:
                failures.append((r.status_code, path))
        for impossible in ("abc", "99999999999999999999"):
            path = reverse(f"{name}_history", args=[impossible])
            r = demo_client.get(path)
            if r.status_code != 302 or r["Location"] != reverse("admin:index"):
                failures.append((r.status_code, path))
    assert failures == []
    assert checked_history >= 20  # the demo data reaches most of the admin
