"""QR images and streamed CSV exports of codes."""

from __future__ import annotations

import csv
import io
import struct

import pytest
from django.test import Client

from promotions import exports, qr, services
from promotions.models import Code
from tests.helpers import admin_url, login

pytestmark = pytest.mark.filterwarnings("ignore:No directory at:UserWarning")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def url(name, *args, query=""):
    return admin_url(f"promotions_{name}", *args, query=query)


def read_csv(response) -> list[list[str]]:
    assert response.streaming
    body = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(body)))


@pytest.fixture
def batches(make_campaign, manager, member, django_capture_on_commit_callbacks):
    campaign = make_campaign(name="=cmd|' /C calc'!A0")  # a formula-looking name must not run in a spreadsheet
    other = make_campaign(name="Other")
    with django_capture_on_commit_callbacks(execute=True):
        first = services.create_code_batch(campaign=campaign, actor=manager, count=12, length=10, max_uses=2)
        second = services.create_code_batch(campaign=other, actor=manager, count=7, length=10)
    Code.objects.filter(pk=Code.objects.filter(batch=first).order_by("pk").first().pk).update(assigned_member=member)
    return {"campaign": campaign, "other": other, "first": first, "second": second}


# --- QR ------------------------------------------------------------------------------------------


def test_qr_svg_and_png_are_images():
    svg = qr.qr_svg("SPR-ABCD-EFGH")
    assert svg.startswith(b"<svg") and svg.rstrip().endswith(b"</svg>")
    png = qr.qr_png("SPR-ABCD-EFGH")
    assert png.startswith(PNG_MAGIC)
    width, height = struct.unpack(">II", png[16:24])  # the IHDR chunk
    assert width == height and width >= 21 * 6  # at least version 1 at scale 6
    assert struct.unpack(">I", qr.qr_png("X", scale=2)[16:20])[0] < width
    with pytest.raises(ValueError):
        qr.qr_png("X", scale=0)
    with pytest.raises(ValueError):
        qr.qr_svg("")


@pytest.mark.django_db
def test_admin_qr_views_return_images(batches, manager, support_user, integration_user):
    code = Code.objects.filter(batch=batches["first"]).first()
    client = login(manager)
    svg = client.get(url("code_qr", code.pk, "svg"))
    assert svg.status_code == 200 and svg["Content-Type"] == "image/svg+xml"
    assert svg.content.startswith(b"<svg")
    png = client.get(url("code_qr", code.pk, "png"))
    assert png.status_code == 200 and png["Content-Type"] == "image/png"
    assert png.content.startswith(PNG_MAGIC)
    assert login(support_user).get(url("code_qr", code.pk, "png")).status_code == 200
    assert client.get(url("code_qr", code.pk, "gif")).status_code == 404
    assert client.get(url("code_qr", 999999, "svg")).status_code == 404
    # not staff: sent to the login page
    assert login(integration_user).get(url("code_qr", code.pk, "svg")).status_code == 302
    assert Client().get(url("code_qr", code.pk, "svg")).status_code == 302


# --- CSV -----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_export_streams_the_filtered_changelist(batches, manager, member):
    client = login(manager)
    first = batches["first"]
    response = client.get(url("code_export", query=f"campaign__id__exact={batches['campaign'].pk}"))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = read_csv(response)
    assert rows[0] == exports.HEADER
    body = rows[1:]
    assert len(body) == 12
    expected = set(Code.objects.filter(batch=first).values_list("code", flat=True))
    assert {r[0] for r in body} == expected
    assert {(r[1], r[2], r[3], r[5]) for r in body} == {("active", "0", "2", str(first.pk))}
    assert {r[4] for r in body} == {"'=cmd|' /C calc'!A0"}
    assert [r[6] for r in body].count(member.external_id) == 1
    assert all(r[9] for r in body)  # created_at
    # newest first, like the list
    ids = list(Code.objects.filter(code__in=[r[0] for r in body]).order_by("-id").values_list("code", flat=True))
    assert [r[0] for r in body] == ids


@pytest.mark.django_db
def test_export_honours_status_and_search(batches, manager):
    client = login(manager)
    code = Code.objects.filter(batch=batches["second"]).first()
    services.void_code(code=code, actor=manager, reason="test")
    rows = read_csv(client.get(url("code_export", query="status__exact=void")))
    assert [r[0] for r in rows[1:]] == [code.code]
    rows = read_csv(client.get(url("code_export"), {"q": code.code.lower()}))
    assert [r[0] for r in rows[1:]] == [code.code]
    rows = read_csv(client.get(url("code_export")))
    assert len(rows) == 1 + 19


@pytest.mark.django_db
def test_changelist_links_to_the_export_with_the_same_filters(batches, manager):
    response = login(manager).get(url("code_changelist", query=f"batch__id__exact={batches['first'].pk}"))
    html = response.content.decode()
    assert f"{url('code_export')}?batch__id__exact={batches['first'].pk}" in html


@pytest.mark.django_db
def test_batch_export_link_and_action(batches, manager):
    client = login(manager)
    second = batches["second"]
    rows = read_csv(client.get(url("codebatch_export", second.pk)))
    assert rows[0] == exports.HEADER and len(rows) == 8
    assert {r[5] for r in rows[1:]} == {str(second.pk)}
    response = client.post(
        url("codebatch_changelist"),
        {"action": "export_csv", "_selected_action": [batches["first"].pk, second.pk]},
    )
    rows = read_csv(response)
    assert len(rows) == 1 + 19
    assert client.get(url("codebatch_export", 999999)).status_code == 404


@pytest.mark.django_db
def test_code_export_action_for_selected_codes(batches, manager):
    picked = list(Code.objects.filter(batch=batches["first"]).values_list("pk", flat=True)[:3])
    response = login(manager).post(url("code_changelist"), {"action": "export_selected", "_selected_action": picked})
    rows = read_csv(response)
    assert len(rows) == 4


@pytest.mark.django_db
def test_export_reads_in_chunks(batches):
    rows = list(exports.code_rows(Code.objects.order_by("-id"), chunk_size=5))
    assert len(rows) == 1 + 19
