"""The promotions admin, driven through the Django test client."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from loyalty.exceptions import TooManyAttempts
from loyalty.models import Segment
from promotions import services
from promotions.models import (
    AbuseSignal,
    Campaign,
    CampaignMemberUsage,
    Code,
    CodeBatch,
    CodeEvent,
    CodeRedemption,
)
from tests.helpers import admin_url, login, messages_of

pytestmark = pytest.mark.filterwarnings("ignore:No directory at:UserWarning")  # whitenoise without collectstatic


def url(name, *args, query=""):
    return admin_url(f"promotions_{name}", *args, query=query)


def req(codes, member=None, client="pos-1", ip="10.0.0.1", order_id="o-1"):
    return services.clean_request(
        codes=codes,
        member=member,
        order={"id": order_id, "amount": "100.00", "channel": "online"},
        client=client,
        ip=ip,
    )


def generate(campaign, actor, capture, **kwargs):
    kwargs.setdefault("count", 5)
    kwargs.setdefault("length", 10)
    with capture(execute=True):
        batch = services.create_code_batch(campaign=campaign, actor=actor, **kwargs)
    batch.refresh_from_db()
    return batch


@pytest.fixture
def data(make_campaign, manager, member, django_capture_on_commit_callbacks):
    """A campaign with a batch of 5 codes and a named code that was validated, redeemed and rolled back,
    plus an abuse signal."""
    campaign = make_campaign(name="Spring sale", code_pattern="SPR-****-****")
    batch = generate(campaign, manager, django_capture_on_commit_callbacks)
    named = services.create_named_code(campaign=campaign, code="WELCOME-10", actor=manager, max_uses=3)
    services.validate_codes(req(["welcome10"], member), actor=manager)
    [use] = services.redeem_codes(req(["WELCOME10"], member), actor=manager)
    services.rollback_code_redemption(redemption=use, actor=manager, reason="Order cancelled")
    services.redeem_codes(req(["WELCOME10"], member, order_id="o-2"), actor=manager)
    AbuseSignal.objects.create(
        kind="failed_validations", subject_type="client", subject="bot", count=10, window_seconds=600
    )
    return {"campaign": campaign, "batch": batch, "named": named, "use": use, "member": member}


MODELS = [Campaign, CodeBatch, Code, CodeRedemption, CodeEvent, AbuseSignal, CampaignMemberUsage]


@pytest.mark.django_db
@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
@pytest.mark.parametrize("who", ["admin", "manager", "auditor"])
def test_changelists_and_change_pages_render(data, admin_user, manager, auditor_user, model, who):
    user = {"admin": admin_user, "manager": manager, "auditor": auditor_user}[who]
    name = model._meta.model_name
    client = login(user)
    expected = 200 if user.has_perm(f"promotions.view_{name}") else 403
    assert client.get(url(f"{name}_changelist")).status_code == expected
    obj = model.objects.order_by("pk").first()
    assert client.get(url(f"{name}_change", obj.pk)).status_code == expected
    if model is AbuseSignal and expected == 200:
        assert b"Anomalies" in client.get(url(f"{name}_changelist")).content


@pytest.mark.django_db
def test_campaign_page_shows_batches_stats_status_buttons_and_the_generate_form(data, manager):
    response = login(manager).get(url("campaign_change", data["campaign"].pk))
    html = response.content.decode()
    assert response.status_code == 200
    stats = response.context["stats"]
    assert stats["codes"]["total"] == 6 and stats["redemptions"] == 1
    assert 'id="generate-codes-form"' in html and 'id="campaign-stats"' in html
    assert "5/5 (100%)" in html  # the batch inline's progress
    assert url("codebatch_export", data["batch"].pk) in html
    assert [s for s, _ in response.context["status_targets"]] == ["paused", "ended"]


@pytest.mark.django_db
def test_auditor_sees_everything_read_only(data, auditor_user):
    client = login(auditor_user)
    campaign = data["campaign"]
    response = client.get(url("campaign_change", campaign.pk))
    html = response.content.decode()
    assert response.status_code == 200
    assert 'name="_save"' not in html and 'id="generate-codes-form"' not in html
    assert response.context["status_targets"] == []
    assert client.post(url("campaign_change", campaign.pk), {"name": "Hacked"}).status_code == 403
    assert client.post(url("campaign_generate_codes", campaign.pk), {"count": 5, "length": 10}).status_code == 403
    assert client.post(url("campaign_status", campaign.pk), {"status": "paused"}).status_code == 403
    # no write actions on the code list (export only), and the void view refuses
    response = client.get(url("code_changelist"))
    assert set(response.context["cl"].model_admin.get_actions(response.wsgi_request)) == {"export_selected"}
    assert client.post(url("code_void"), {"code_id": data["named"].pk, "reason": "x"}).status_code == 403
    assert client.post(url("code_rollback"), {"redemption_id": data["use"].pk, "reason": "x"}).status_code == 403
    campaign.refresh_from_db()
    assert (campaign.name, campaign.status) == ("Spring sale", "active")
    assert not CodeBatch.objects.exclude(pk=data["batch"].pk).exists()


@pytest.mark.django_db
def test_add_and_change_campaign_go_through_the_services(manager, metric, tiers):
    client = login(manager)
    segment = Segment.objects.create(code="vip", name="VIP")
    form = {
        "name": "Summer bonus",
        "description": "",
        "kind": "bonus_points",
        "value": "50",
        "metric": metric.pk,
        "starts_at_0": "",
        "starts_at_1": "",
        "ends_at_0": "",
        "ends_at_1": "",
        "max_redemptions": "1000",
        "max_discount_total": "",
        "per_member_limit": "1",
        "eligible_tiers": [tiers["GOLD"].pk],
        "eligible_segments": [segment.pk],
        "min_order_amount": "",
        "channels": "online, pos",
        "stacking": "stackable",
        "stack_group": "summer",
        "max_codes_per_order": "2",
        "code_pattern": "SUM-####-????",
        "batches-TOTAL_FORMS": "0",
        "batches-INITIAL_FORMS": "0",
    }
    response = client.post(url("campaign_add"), form)
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    campaign = Campaign.objects.get(name="Summer bonus")
    assert campaign.created_by == manager and campaign.status == "draft"
    assert campaign.channels == ["online", "pos"]
    assert list(campaign.eligible_tiers.all()) == [tiers["GOLD"]]
    assert list(campaign.eligible_segments.all()) == [segment]
    assert campaign.history.first().history_change_reason == "Created"

    # the change form shows the channels as text and saves through update_campaign with the reason
    page = client.get(url("campaign_change", campaign.pk)).content.decode()
    assert 'value="online, pos"' in page
    response = client.post(
        url("campaign_change", campaign.pk),
        {**form, "name": "Summer bonus 2", "channels": "", "change_reason": "Renamed for the newsletter"},
    )
    assert response.status_code == 302
    campaign.refresh_from_db()
    assert (campaign.name, campaign.channels) == ("Summer bonus 2", [])
    latest = campaign.history.first()
    assert (latest.history_change_reason, latest.history_user) == ("Renamed for the newsletter", manager)


@pytest.mark.django_db
def test_campaign_form_refuses_bad_values_inline_and_writes_nothing(manager):
    response = login(manager).post(
        url("campaign_add"),
        {
            "name": "Too generous",
            "kind": "percent_discount",
            "value": "150",
            "stacking": "exclusive",
            "max_codes_per_order": "1",
            "code_pattern": "NOPLACEHOLDER",
            "batches-TOTAL_FORMS": "0",
            "batches-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "value" in errors and "code_pattern" in errors
    assert not Campaign.objects.exists()


@pytest.mark.django_db
def test_status_actions_report_per_row_errors(make_campaign, manager):
    draft = make_campaign(name="Draft one", status="draft")
    ended = make_campaign(name="Over", status="ended")
    client = login(manager)
    response = client.post(
        url("campaign_changelist"), {"action": "activate", "_selected_action": [draft.pk, ended.pk]}, follow=True
    )
    msgs = [str(m) for m in response.context["messages"]]
    assert "Activated 1 campaign." in msgs
    assert any(m.startswith("Over: status cannot move from ended to active") for m in msgs)
    draft.refresh_from_db()
    assert draft.status == "active"
    client.post(url("campaign_changelist"), {"action": "pause", "_selected_action": [draft.pk]})
    draft.refresh_from_db()
    assert draft.status == "paused"
    # "End" asks for a reason first, then ends
    page = client.post(url("campaign_changelist"), {"action": "end", "_selected_action": [draft.pk]})
    assert page.status_code == 200 and b"Ending is final" in page.content
    client.post(
        url("campaign_changelist"),
        {"action": "end", "_selected_action": [draft.pk], "apply": "1", "reason": "Budget cut"},
    )
    draft.refresh_from_db()
    assert draft.status == "ended"
    assert draft.history.first().history_change_reason == "Budget cut"
    # an ended campaign's page is read-only
    assert b'name="_save"' not in client.get(url("campaign_change", draft.pk)).content


@pytest.mark.django_db
def test_status_buttons_on_the_campaign_page(make_campaign, manager):
    campaign = make_campaign(status="draft")
    client = login(manager)
    response = client.post(url("campaign_status", campaign.pk), {"status": "active"})
    assert response.status_code == 302
    campaign.refresh_from_db()
    assert campaign.status == "active"
    response = client.post(url("campaign_status", campaign.pk), {"status": "draft"})
    assert any("Status not changed" in m for m in messages_of(response))


@pytest.mark.django_db
def test_generate_codes_form_creates_a_completed_batch(make_campaign, manager, django_capture_on_commit_callbacks):
    campaign = make_campaign()
    client = login(manager)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            url("campaign_generate_codes", campaign.pk),
            {
                "count": "50",
                "pattern": "SPR-****-****",
                "max_uses": "1",
                "release_at": "2030-01-01T09:00",
                "token": "t1",
            },
        )
    assert response.status_code == 302 and response.url == url("campaign_change", campaign.pk)
    batch = CodeBatch.objects.get()
    assert (batch.status, batch.generated, batch.count, batch.created_by) == ("completed", 50, 50, manager)
    assert batch.release_at.year == 2030
    assert Code.objects.filter(batch=batch, campaign=campaign).count() == 50
    assert any(m.startswith(f"Batch #{batch.pk} queued: 50 codes") for m in messages_of(response))
    # the same form posted twice does not make a second batch
    response = client.post(
        url("campaign_generate_codes", campaign.pk), {"count": "50", "length": "10", "max_uses": "1", "token": "t1"}
    )
    assert CodeBatch.objects.count() == 1
    assert any("already submitted" in m for m in messages_of(response))


@pytest.mark.django_db
def test_generate_codes_refuses_a_guessable_pattern_and_writes_nothing(make_campaign, manager):
    campaign = make_campaign()
    response = login(manager).post(
        url("campaign_generate_codes", campaign.pk), {"count": "100", "pattern": "WELCOME-##", "max_uses": "1"}
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "could be guessed" in html  # the service's explanation, as message and on the field
    assert "No codes generated." in html
    assert response.context["generate_form"].errors["pattern"]
    assert not CodeBatch.objects.exists() and not Code.objects.exists()


@pytest.mark.django_db
def test_generate_codes_needs_the_permission(make_campaign, support_user):
    campaign = make_campaign()
    response = login(support_user).post(url("campaign_generate_codes", campaign.pk), {"count": "5", "length": "10"})
    assert response.status_code == 403
    assert not CodeBatch.objects.exists()


@pytest.mark.django_db
def test_generate_for_a_segment_assigns_one_code_per_member(
    make_campaign, manager, member, django_capture_on_commit_callbacks
):
    campaign = make_campaign()
    segment = Segment.objects.create(code="vip", name="VIP")
    segment.members.add(member)
    with django_capture_on_commit_callbacks(execute=True):
        login(manager).post(
            url("campaign_generate_codes", campaign.pk),
            {"segment": segment.pk, "length": "10", "max_uses": "1", "email_members": "on"},
        )
    code = Code.objects.get()
    assert code.assigned_member == member


def _changelist_queries(client, query=""):
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url("code_changelist", query=query))
    assert response.status_code == 200
    return len(ctx.captured_queries), response


@pytest.mark.django_db
def test_code_changelist_query_count_is_bounded_and_independent_of_rows(
    make_campaign, manager, member, django_capture_on_commit_callbacks, django_assert_max_num_queries
):
    campaign = make_campaign()
    client = login(manager)
    batch = generate(campaign, manager, django_capture_on_commit_callbacks, count=5)
    Code.objects.filter(pk=Code.objects.order_by("pk").first().pk).update(assigned_member=member)
    few, response = _changelist_queries(client)
    assert len(response.context["cl"].result_list) == 5
    generate(campaign, manager, django_capture_on_commit_callbacks, count=45)
    many, response = _changelist_queries(client)
    assert len(response.context["cl"].result_list) == 50
    assert few == many
    with django_assert_max_num_queries(12):
        client.get(url("code_changelist", query=f"campaign__id__exact={campaign.pk}&status__exact=active"))
    with django_assert_max_num_queries(12):
        client.get(url("code_changelist", query=f"batch__id__exact={batch.pk}"))
    assert response.context["cl"].show_full_result_count is False


@pytest.mark.django_db
def test_code_changelist_filters_by_batch_and_refuses_unindexed_lookups(
    make_campaign, manager, django_capture_on_commit_callbacks
):
    campaign = make_campaign()
    first = generate(campaign, manager, django_capture_on_commit_callbacks, count=3)
    generate(campaign, manager, django_capture_on_commit_callbacks, count=4)
    client = login(manager)
    response = client.get(url("code_changelist", query=f"batch__id__exact={first.pk}"))
    assert {c.batch_id for c in response.context["cl"].result_list} == {first.pk}
    assert len(response.context["cl"].result_list) == 3
    # a filter on an unindexed column is refused (Django answers 400 to a disallowed lookup)
    assert client.get(url("code_changelist", query="uses=0")).status_code == 400
    assert client.get(url("code_export", query="code__icontains=A")).status_code == 400


@pytest.mark.django_db
@pytest.mark.parametrize("term", ["welcome-10", " Welcome 10 ", "WELCOME10"])
def test_code_search_is_exact_on_the_normalised_code(make_campaign, manager, term):
    campaign = make_campaign()
    services.create_named_code(campaign=campaign, code="WELCOME-10", actor=manager)
    services.create_named_code(campaign=campaign, code="WELCOME-100", actor=manager)
    response = login(manager).get(url("code_changelist"), {"q": term})
    assert [c.code for c in response.context["cl"].result_list] == ["WELCOME-10"]
    response = login(manager).get(url("code_changelist"), {"q": "WELCOME"})
    assert list(response.context["cl"].result_list) == []


@pytest.mark.django_db
def test_lookup_page_shows_the_whole_timeline(data, manager):
    response = login(manager).get(url("code_lookup"), {"code": "welcome 10"})
    assert response.status_code == 200
    html = response.content.decode()
    assert response.context["code"] == data["named"]
    kinds = [e["kind"] for e in response.context["timeline"]]
    assert kinds[0] == "generated"
    assert {"created", "validated", "redeemed", "rolled_back"} <= set(kinds)
    assert kinds.index("validated") < kinds.index("redeemed") < kinds.index("rolled_back")
    validated = next(e for e in response.context["timeline"] if e["kind"] == "validated")
    assert (validated["result"], validated["who"], validated["ip"]) == ("valid", "pos-1", "10.0.0.1")
    assert "Order cancelled" in html and "10.0.0.1" in html and "pos-1" in html
    assert url("code_qr", data["named"].pk, "svg") in html
    # one use is still applied: it has a "Roll back this use" button; the rolled back one has none
    assert html.count("Roll back this use") == 1
    # the code's record page links to the lookup
    page = login(manager).get(url("code_change", data["named"].pk)).content.decode()
    assert url("code_lookup", query="code=WELCOME10") in page


@pytest.mark.django_db
def test_lookup_of_an_unknown_code_shows_the_attempts(make_campaign, manager):
    make_campaign()
    services.validate_codes(req(["NOPE-1"], client="shop", ip="10.1.1.1"), actor=manager)
    response = login(manager).get(url("code_lookup"), {"code": "nope1"})
    assert response.context["code"] is None
    html = response.content.decode()
    assert "No code NOPE1 exists." in html and "code_unknown" in html and "10.1.1.1" in html


@pytest.mark.django_db
def test_roll_back_a_use_from_the_lookup_page(data, manager):
    current = CodeRedemption.objects.get(status="applied")
    client = login(manager)
    response = client.post(url("code_rollback"), {"redemption_id": current.pk, "reason": ""})
    assert any("Use not rolled back" in m for m in messages_of(response))
    response = client.post(url("code_rollback"), {"redemption_id": current.pk, "reason": "Customer complaint"})
    assert response.url == url("code_lookup", query="code=WELCOME10")
    current.refresh_from_db()
    assert (current.status, current.rollback_reason, current.rolled_back_by) == (
        "rolled_back",
        "Customer complaint",
        manager,
    )
    data["named"].refresh_from_db()
    assert data["named"].uses == 0
    # twice: the service refuses and the message says why
    response = client.post(url("code_rollback"), {"redemption_id": current.pk, "reason": "again"})
    assert any("cannot move from rolled_back" in m for m in messages_of(response))


@pytest.mark.django_db
def test_code_redemption_rollback_action(data, manager):
    current = CodeRedemption.objects.get(status="applied")
    client = login(manager)
    page = client.post(url("coderedemption_changelist"), {"action": "roll_back", "_selected_action": [current.pk]})
    assert page.status_code == 200 and b"Roll back these uses" in page.content
    client.post(
        url("coderedemption_changelist"),
        {"action": "roll_back", "_selected_action": [current.pk], "apply": "1", "reason": "Duplicate order"},
    )
    current.refresh_from_db()
    assert current.status == "rolled_back"


@pytest.mark.django_db
def test_void_action_voids_and_records_a_timeline_event(data, manager):
    code = Code.objects.filter(batch=data["batch"]).first()
    client = login(manager)
    page = client.post(url("code_changelist"), {"action": "void", "_selected_action": [code.pk]})
    assert page.status_code == 200 and b"Void these codes" in page.content
    page = client.post(url("code_changelist"), {"action": "void", "_selected_action": [code.pk], "apply": "1"})
    assert page.status_code == 200  # no reason: asked again
    code.refresh_from_db()
    assert code.status == "active"
    response = client.post(
        url("code_changelist"),
        {"action": "void", "_selected_action": [code.pk], "apply": "1", "reason": "Leaked on a forum"},
        follow=True,
    )
    assert "Voided 1 code." in [str(m) for m in response.context["messages"]]
    code.refresh_from_db()
    assert code.status == "void"
    event = CodeEvent.objects.get(code=code, kind="voided")
    assert (event.detail["reason"], event.actor) == ("Leaked on a forum", manager)
    lookup = client.get(url("code_lookup"), {"code": code.code})
    assert "voided" in [e["kind"] for e in lookup.context["timeline"]]
    assert lookup.context["can_void"] is False


@pytest.mark.django_db
def test_void_from_the_lookup_page(data, manager):
    code = Code.objects.filter(batch=data["batch"]).first()
    response = login(manager).post(url("code_void"), {"code_id": code.pk, "reason": "Printed twice"})
    assert response.url == url("code_lookup", query=f"code={code.normalized}")
    code.refresh_from_db()
    assert code.status == "void"


@pytest.mark.django_db
@override_settings(CODE_FAILED_VALIDATION_LIMIT=2, CODE_LOCKOUT_SECONDS=60)
def test_anomalies_list_shows_brute_force_and_marks_it_reviewed(make_campaign, manager):
    make_campaign()
    for i in range(2):
        services.validate_codes(req([f"GUESS{i}"], client="bot", ip="6.6.6.6"), actor=manager)
    with pytest.raises(TooManyAttempts):
        services.validate_codes(req(["GUESS9"], client="bot", ip="6.6.6.6"), actor=manager)
    client = login(manager)
    response = client.get(url("abusesignal_changelist"), {"kind__exact": "failed_validations", "reviewed__exact": "0"})
    signals = list(response.context["cl"].result_list)
    assert {(s.subject_type, s.subject) for s in signals} == {("client", "bot"), ("ip", "6.6.6.6")}
    html = response.content.decode()
    assert "Anomalies" in html and "6.6.6.6" in html and "10 min" in html
    detail = client.get(url("abusesignal_change", signals[0].pk)).content.decode()
    assert url("code_lookup", query="code=GUESS1") in detail
    client.post(url("abusesignal_changelist"), {"action": "mark_reviewed", "_selected_action": [s.pk for s in signals]})
    assert set(AbuseSignal.objects.values_list("reviewed", "reviewed_by")) == {(True, manager.pk)}


@pytest.mark.django_db
def test_search_of_code_events_and_redemptions_is_exact(data, manager):
    client = login(manager)
    events = client.get(url("codeevent_changelist"), {"q": "welcome-10"}).context["cl"].result_list
    assert {e.code_text for e in events} == {"WELCOME10"} and len(events) >= 4
    uses = client.get(url("coderedemption_changelist"), {"q": "o-2"}).context["cl"].result_list
    assert [u.order_id for u in uses] == ["o-2"]
    uses = client.get(url("coderedemption_changelist"), {"q": "Welcome 10"}).context["cl"].result_list
    assert len(uses) == 2


@pytest.mark.django_db
def test_anomalies_and_per_member_usage_search_by_the_exact_term(data, manager):
    client = login(manager)
    AbuseSignal.objects.create(
        kind="failed_validations", subject_type="client", subject="bot-2", count=9, window_seconds=600
    )
    found = client.get(url("abusesignal_changelist", query="q=%20bot%20")).context["cl"].result_list
    assert [s.subject for s in found] == ["bot"]  # stripped, exact: not "bot-2"
    signal = AbuseSignal.objects.get(subject="bot")
    assert not client.get(url("abusesignal_changelist", query=f"q={signal.pk}")).context["cl"].result_list
    external_id = data["member"].external_id
    found = client.get(url("campaignmemberusage_changelist", query=f"q={external_id}")).context["cl"].result_list
    assert [(u.member_id, u.uses) for u in found] == [(data["member"].pk, 1)]
    assert not client.get(url("campaignmemberusage_changelist", query=f"q={external_id}x")).context["cl"].result_list
