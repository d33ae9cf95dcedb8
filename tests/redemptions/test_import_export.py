"""Export of the filtered Redemptions list (CSV/XLSX and streamed CSV) and the two all-or-nothing
imports (fulfillment updates through the service; legacy redemptions without ledger movement)."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from openpyxl import Workbook, load_workbook

from loyalty.models import LedgerEntry, PointBalance
from redemptions import resources, services
from redemptions.models import Redemption
from tests.helpers import admin_url as url
from tests.helpers import login

pytestmark = pytest.mark.filterwarnings("ignore:No directory at:UserWarning")


def csv_file(rows, name="file.csv") -> SimpleUploadedFile:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return SimpleUploadedFile(name, out.getvalue().encode(), content_type="text/csv")


def parse_csv(content: bytes) -> list[dict]:
    return list(csv.DictReader(io.StringIO(content.decode("utf-8-sig"))))


@pytest.fixture
def shipped_setup(rich_member, reward, support_user):
    mug = reward(name="Mug", requires_fulfillment=True, external_id="MUG")
    reds = [services.redeem_reward(member=rich_member, reward=mug, actor=support_user) for _ in range(3)]
    badge = reward(name="Badge", type="badge", external_id="BADGE", points=10)
    other = services.redeem_reward(member=rich_member, reward=badge, actor=support_user)
    return {"mug": mug, "reds": reds, "badge": badge, "other": other, "member": rich_member}


# --- export ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_stream_csv_export_contains_the_filtered_rows(shipped_setup, support_user):
    reds, other = shipped_setup["reds"], shipped_setup["other"]
    services.change_status(redemption=reds[0], status="processing", actor=support_user)
    client = login(support_user)
    response = client.get(url("redemptions_redemption_export_csv", query="status__exact=pending"))
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"].startswith("text/csv")
    rows = parse_csv(b"".join(response.streaming_content))
    assert sorted(int(r["id"]) for r in rows) == sorted([reds[1].pk, reds[2].pk, other.pk])
    first = next(r for r in rows if int(r["id"]) == other.pk)
    assert (first["member_external_id"], first["reward_external_id"], first["points_spent"], first["status"]) == (
        "M-1",
        "BADGE",
        "10",
        "pending",
    )
    # search too
    rows = parse_csv(
        b"".join(client.get(url("redemptions_redemption_export_csv"), {"q": f"#{other.pk}"}).streaming_content)
    )
    assert [int(r["id"]) for r in rows] == [other.pk]


@pytest.mark.django_db
def test_import_export_csv_and_xlsx_exports_respect_filters(shipped_setup, support_user):
    mug = shipped_setup["mug"]
    client = login(support_user)
    query = f"reward__id__exact={mug.pk}"
    page = client.get(url("redemptions_redemption_export", query=query))
    assert page.status_code == 200
    formats = {k: v for k, v in page.context["form"].fields["format"].choices if k != ""}
    assert sorted(formats.values()) == ["csv", "xlsx"]
    csv_index = next(k for k, v in formats.items() if v == "csv")
    fields = [name for name, _ in resources.EXPORT_COLUMNS]
    payload = {"format": csv_index, "resource": 0, **{f"redemptionresource_{f}": "on" for f in fields}}
    response = client.post(url("redemptions_redemption_export", query=query), payload)
    assert response.status_code == 200, response.content[:500]
    rows = parse_csv(response.content)
    assert sorted(int(r["id"]) for r in rows) == sorted(r.pk for r in shipped_setup["reds"])
    assert {r["reward_external_id"] for r in rows} == {"MUG"}
    xlsx_index = next(k for k, v in formats.items() if v == "xlsx")
    response = client.post(url("redemptions_redemption_export", query=query), {**payload, "format": xlsx_index})
    sheet = load_workbook(io.BytesIO(response.content)).active
    assert sheet.max_row == 1 + 3


# --- fulfillment import ----------------------------------------------------------------------


def _confirm_fulfillment(shipped_setup, support_user):
    for red in shipped_setup["reds"]:
        services.change_fulfillment(redemption=red, fulfillment_status="confirmed_paid", actor=support_user)


@pytest.mark.django_db
def test_fulfillment_import_previews_then_updates_through_the_service(shipped_setup, support_user):
    _confirm_fulfillment(shipped_setup, support_user)
    a, b, c = shipped_setup["reds"]
    upload = csv_file(
        [
            ["Redemption ID", "Fulfillment status", "Tracking ref"],
            [a.pk, "shipped", "TRK-A"],
            [b.pk, "Shipped", "TRK-B"],
            [b.pk, "delivered", ""],
        ]
    )
    client = login(support_user)
    preview = client.post(url("redemptions_redemption_import", "fulfillment"), {"import_file": upload})
    assert preview.status_code == 200
    result = preview.context["result"]
    assert result.dry_run and result.ok and [r.line for r in result.rows] == [2, 3, 4]
    assert b'id="import-preview-ok"' in preview.content
    a.refresh_from_db()
    assert a.fulfillment_status == "confirmed_paid"  # the dry run wrote nothing
    response = client.post(
        url("redemptions_redemption_import", "fulfillment"), {"rows": preview.context["token"], "confirm": "1"}
    )
    assert response.context["result"].applied == 3
    for red in (a, b, c):
        red.refresh_from_db()
    assert (a.fulfillment_status, a.tracking_ref) == ("shipped", "TRK-A")
    assert (b.fulfillment_status, b.tracking_ref) == ("delivered", "TRK-B")
    assert c.fulfillment_status == "confirmed_paid"
    latest = b.history.first()
    assert (latest.history_user, latest.history_change_reason) == (
        support_user,
        "Imported from the shipping partner's file",
    )


@pytest.mark.django_db
def test_fulfillment_import_with_one_bad_row_imports_nothing_and_names_the_row(shipped_setup, support_user):
    _confirm_fulfillment(shipped_setup, support_user)
    a, b, c = shipped_setup["reds"]
    rows = [
        ["redemption_id", "fulfillment_status", "tracking_ref"],
        [a.pk, "shipped", "T1"],
        [b.pk, "delivered", ""],  # confirmed_paid → delivered skips shipped: invalid_transition
        [c.pk, "shipped", "T3"],
        [999999, "shipped", ""],
        [shipped_setup["other"].pk, "teleported", ""],
    ]
    client = login(support_user)
    preview = client.post(url("redemptions_redemption_import", "fulfillment"), {"import_file": csv_file(rows)})
    result = preview.context["result"]
    assert not result.ok and preview.context["token"] is None
    assert [(r.line, r.error.split(" ")[0]) for r in result.errors] == [
        (3, "fulfillment_status"),
        (5, "Redemption"),
        (6, "Unknown"),
    ]
    html = preview.content.decode()
    assert "Row 3: fulfillment_status cannot move from confirmed_paid to delivered" in html
    assert 'name="confirm"' not in html
    for red in (a, b, c):
        red.refresh_from_db()
        assert red.fulfillment_status == "confirmed_paid"
    # a forged or replayed confirm cannot bypass the check: the rows are signed and run again
    token = resources.sign_rows(
        [{"redemption_id": str(b.pk), "fulfillment_status": "delivered", "tracking_ref": ""}], kind="fulfillment"
    )
    response = client.post(url("redemptions_redemption_import", "fulfillment"), {"rows": token, "confirm": "1"})
    assert "Nothing imported" in response.content.decode()
    response = client.post(url("redemptions_redemption_import", "fulfillment"), {"rows": token + "x", "confirm": "1"})
    assert b'id="file-error"' in response.content
    b.refresh_from_db()
    assert b.fulfillment_status == "confirmed_paid"


@pytest.mark.django_db
def test_fulfillment_import_reads_xlsx_and_refuses_bad_files(shipped_setup, support_user):
    _confirm_fulfillment(shipped_setup, support_user)
    a = shipped_setup["reds"][0]
    book = Workbook()
    sheet = book.active
    sheet.append(["redemption_id", "fulfillment_status", "tracking_ref"])
    sheet.append([a.pk, "shipped", "X-1"])
    data = io.BytesIO()
    book.save(data)
    upload = SimpleUploadedFile("partner.xlsx", data.getvalue())
    client = login(support_user)
    preview = client.post(url("redemptions_redemption_import", "fulfillment"), {"import_file": upload})
    assert preview.context["result"].ok
    missing = client.post(
        url("redemptions_redemption_import", "fulfillment"), {"import_file": csv_file([["id", "foo"], [1, 2]])}
    )
    assert "Missing column(s): fulfillment_status, tracking_ref" in missing.content.decode()
    wrong = client.post(
        url("redemptions_redemption_import", "fulfillment"),
        {"import_file": SimpleUploadedFile("x.txt", b"hello")},
    )
    assert b"Upload a .csv or .xlsx file" in wrong.content


@pytest.mark.django_db
def test_import_permissions(shipped_setup, approver_user, support_user, auditor_user, admin_user):
    assert login(approver_user).get(url("redemptions_redemption_import", "fulfillment")).status_code == 200
    assert login(auditor_user).get(url("redemptions_redemption_import", "fulfillment")).status_code == 403
    assert login(support_user).get(url("redemptions_redemption_import", "fulfillment")).status_code == 200
    assert login(support_user).get(url("redemptions_redemption_import", "legacy")).status_code == 403
    assert login(admin_user).get(url("redemptions_redemption_import", "legacy")).status_code == 200
    assert login(admin_user).get(url("redemptions_redemption_import", "nope")).status_code == 403


# --- legacy import ---------------------------------------------------------------------------

LEGACY_HEADER = [
    "member_external_id",
    "reward_external_id",
    "quantity",
    "points_spent",
    "status",
    "created_at",
    "external_ref",
]


@pytest.mark.django_db
def test_legacy_import_good_file_imports_all_without_ledger_movement(shipped_setup, admin_user):
    member = shipped_setup["member"]
    before_balance = PointBalance.objects.get(member=member).balance
    before_entries = LedgerEntry.objects.count()
    before_stock = shipped_setup["mug"].stock
    rows = [
        LEGACY_HEADER,
        ["M-1", "MUG", "1", "100", "completed", "2023-05-01 10:00", "OLD-1"],
        ["M-1", "BADGE", "2", "20", "Canceled", "2023-06-01", "OLD-2"],
    ]
    client = login(admin_user)
    preview = client.post(url("redemptions_redemption_import", "legacy"), {"import_file": csv_file(rows)})
    assert preview.context["result"].ok, preview.context["result"].error_lines()
    assert not Redemption.objects.filter(external_ref__startswith="OLD-").exists()
    client.post(url("redemptions_redemption_import", "legacy"), {"rows": preview.context["token"], "confirm": "1"})
    imported = list(Redemption.objects.filter(external_ref__startswith="OLD-").order_by("external_ref"))
    assert [(r.reward.external_id, r.quantity, r.points_spent, r.status, r.channel) for r in imported] == [
        ("MUG", 1, 100, "completed", "import"),
        ("BADGE", 2, 20, "canceled", "import"),
    ]
    assert imported[0].created_at.year == 2023 and imported[0].created_at.month == 5
    assert imported[0].ledger_entry is None and imported[0].created_by == admin_user
    assert imported[0].history.first().history_user == admin_user
    assert PointBalance.objects.get(member=member).balance == before_balance
    assert LedgerEntry.objects.count() == before_entries
    shipped_setup["mug"].refresh_from_db()
    assert shipped_setup["mug"].stock == before_stock
    # the same file again: every row is a duplicate now
    again = client.post(url("redemptions_redemption_import", "legacy"), {"import_file": csv_file(rows)})
    assert [r.line for r in again.context["result"].errors] == [2, 3]


@pytest.mark.django_db
def test_legacy_import_with_one_bad_row_imports_nothing_and_names_the_row(shipped_setup, admin_user):
    rows = [
        LEGACY_HEADER,
        ["M-1", "MUG", "1", "100", "completed", "2023-05-01", "OLD-1"],
        ["M-404", "MUG", "1", "100", "completed", "2023-05-01", "OLD-2"],
        ["M-1", "MUG", "1", "100", "shipped", "yesterday", "OLD-1"],
        ["M-1", "MUG", "1", "100", "pending", "2023-05-01", "OLD-4"],
    ]
    client = login(admin_user)
    preview = client.post(url("redemptions_redemption_import", "legacy"), {"import_file": csv_file(rows)})
    result = preview.context["result"]
    assert [r.line for r in result.errors] == [3, 4]
    assert "member 'M-404' does not exist" in result.errors[0].error
    problems = result.errors[1].error
    assert "status 'shipped'" in problems and "repeats row 2" in problems and "created_at 'yesterday'" in problems
    html = preview.content.decode()
    assert "Row 3: member &#x27;M-404&#x27; does not exist" in html
    assert not Redemption.objects.filter(external_ref__startswith="OLD-").exists()
    # even a run that skips the preview writes nothing when a row fails
    result = resources.run_legacy_import(
        [dict(zip(LEGACY_HEADER, r, strict=True)) for r in rows[1:]], actor=admin_user, dry_run=False
    )
    assert not result.ok and result.applied == 0
    assert not Redemption.objects.filter(external_ref__startswith="OLD-").exists()


@pytest.mark.django_db
def test_legacy_write_path_is_guarded(shipped_setup, support_user, admin_user):
    from loyalty.exceptions import PermissionRequired

    member, mug = shipped_setup["member"], shipped_setup["mug"]
    kwargs = {
        "member": member,
        "reward": mug,
        "quantity": 1,
        "points_spent": 5,
        "status": "completed",
        "created_at": timezone.now(),
        "external_ref": "L-1",
    }
    with pytest.raises(PermissionRequired):
        resources.import_legacy_redemption(actor=support_user, **kwargs)
    resources.import_legacy_redemption(actor=admin_user, **kwargs)
    with pytest.raises(Exception) as exc:
        resources.import_legacy_redemption(actor=admin_user, **kwargs)
    assert "already imported" in str(exc.value)
    assert Redemption.objects.filter(external_ref="L-1").count() == 1


@pytest.mark.django_db
def test_in_memory_export_is_bounded_and_points_to_the_streamed_one(shipped_setup, support_user, monkeypatch):
    from redemptions.admin.responses import RedemptionAdmin

    monkeypatch.setattr(RedemptionAdmin, "EXPORT_MAX_ROWS", 2)
    client = login(support_user)
    page = client.get(url("redemptions_redemption_export"))
    csv_index = next(k for k, v in page.context["form"].fields["format"].choices if v == "csv")
    fields = [name for name, _ in resources.EXPORT_COLUMNS]
    payload = {"format": csv_index, "resource": 0, **{f"redemptionresource_{f}": "on" for f in fields}}
    response = client.post(url("redemptions_redemption_export"), payload)
    assert response.status_code == 200 and response["Content-Type"].startswith("text/html")
    assert "use “Stream CSV (large lists)”" in response.content.decode()
