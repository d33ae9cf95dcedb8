"""Every model in the admin, on demo data, as a superuser and as an auditor: the list, one
object's change page, its history and one historical version answer 200; junk list parameters are
never a server error; for ids that cannot exist the history page redirects with "does not exist"
like Django's own pages (it used to be a 500 for ``abc``, and for every award) and a version page
is a 404.

The demo is seeded once for the class (``shared_transaction``), not once per test. Each page
*kind* is opened once per model and user; the junk list parameters, which exercise the list code
and not the permissions, are sent as the superuser only.
"""

import pytest
from django.contrib import admin
from django.test import Client
from django.urls import reverse
from simple_history.admin import SimpleHistoryAdmin

from tests.helpers import seed_demo, shared_transaction

IMPOSSIBLE_IDS = ("abc", "99999999999999999999")


def visible_models(user):
    """(url name prefix, model, model admin) of every registered model ``user`` may view."""
    for model, model_admin in admin.site._registry.items():
        opts = model._meta
        if user.has_perm(f"{opts.app_label}.view_{opts.model_name}"):
            yield f"admin:{opts.app_label}_{opts.model_name}", model, model_admin


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture(scope="class")
def demo(django_db_setup, django_db_blocker):
    """The demo (10 members), seeded once for the class."""
    with shared_transaction(django_db_blocker):
        seed_demo(members=10)
        yield


@pytest.mark.slow
@pytest.mark.django_db
@pytest.mark.usefixtures("demo")
class TestEveryAdminPageOnTheDemo:
    @pytest.fixture(autouse=True)
    def _debug(self, settings):
        settings.DEBUG = True

    @pytest.mark.parametrize("who", ["admin_user", "auditor_user"])
    def test_every_list_object_history_and_version_page_answers(self, request, who):
        """Superuser, and auditor: view-only, history included (what auditors are for)."""
        user = request.getfixturevalue(who)
        client = client_for(user)
        failures = []
        checked_history = 0
        for name, _model, model_admin in visible_models(user):
            listing = client.get(reverse(f"{name}_changelist"))
            singleton = listing.status_code == 302 and listing["Location"].endswith("/change/")  # program settings
            if listing.status_code != 200 and not singleton:
                failures.append((listing.status_code, listing.request["PATH_INFO"]))
            obj = model_admin.get_queryset(listing.wsgi_request).order_by("pk").first()
            pages = []
            if obj is not None:
                pages.append(reverse(f"{name}_change", args=[obj.pk]))
                pages.append(reverse(f"{name}_history", args=[obj.pk]))
                tracked = isinstance(model_admin, SimpleHistoryAdmin)
                version = obj.history.order_by("history_id").first() if tracked else None
                if version is not None:
                    pages.append(reverse(f"{name}_simple_history", args=[obj.pk, version.history_id]))
                    for impossible in IMPOSSIBLE_IDS:
                        path = reverse(f"{name}_simple_history", args=[obj.pk, impossible])
                        r = client.get(path)
                        if r.status_code != 404:
                            failures.append((r.status_code, path))
                checked_history += tracked
            for path in pages:
                r = client.get(path)
                if r.status_code != 200:
                    failures.append((r.status_code, path))
            for impossible in IMPOSSIBLE_IDS:
                path = reverse(f"{name}_history", args=[impossible])
                r = client.get(path)
                if r.status_code != 302 or r["Location"] != reverse("admin:index"):
                    failures.append((r.status_code, path))
        assert failures == []
        assert checked_history >= 20  # the demo data reaches most of the admin

    def test_junk_list_parameters_are_never_a_server_error(self, admin_user):
        client = client_for(admin_user)
        failures = []
        for name, model, _model_admin in visible_models(admin_user):
            changelist = reverse(f"{name}_changelist")
            junk_lookups = [
                f"?{f.name}__year={year}"
                for f in model._meta.fields
                if f.get_internal_type() == "DateTimeField"
                for year in (0, 10**20)
            ]
            for junk in [*junk_lookups, "?p=abc", "?o=99", "?q=%25"]:
                r = client.get(changelist + junk)
                if r.status_code >= 500:
                    failures.append((r.status_code, changelist + junk))
        assert failures == []
