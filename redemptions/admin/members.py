"""The member page's Rewards and Rollbacks panels, and its Redeem / Award actions.

Registered through ``loyalty.admin.panels`` so that ``loyalty`` never imports this app.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse

from loyalty.admin.base import PageAction
from loyalty.admin.panels import MemberPanel, register_member_panel
from loyalty.exceptions import DomainError
from loyalty.forms import form_errors_text
from loyalty.models import PointBalance

from .. import selectors, services
from ..forms import AwardForm, RedeemForm
from ..models import Redemption
from .common import changelist_url

RECENT = 20
REDEEM = "redemptions.add_redemption"
AWARD = "redemptions.award_reward"


def _balances(member) -> list[dict]:
    return [
        {"metric": b.metric.code, "metric_id": b.metric_id, "balance": b.balance}
        for b in PointBalance.objects.filter(member=member).select_related("metric").order_by("metric__code")
    ]


def rewards_context(request, member) -> dict | None:
    user = request.user
    if not (user.has_perm("redemptions.view_redemption") or user.has_perm("redemptions.view_award")):
        return None
    can_redeem = user.has_perm(REDEEM) and member.status == member.Status.ACTIVE
    can_award = user.has_perm(AWARD) and member.status == member.Status.ACTIVE
    redeem_form = RedeemForm(prefix="redeem") if can_redeem else None
    rewards = []
    if can_redeem or can_award:
        form = redeem_form or AwardForm(prefix="award")
        rewards = [
            {"id": r.pk, "points": r.points, "metric": r.metric.code, "stock": r.stock}
            for r in form.fields["reward"].queryset
        ]
    return {
        "member": member,
        "responses": selectors.member_responses(member, limit=RECENT),
        "limit": RECENT,
        "redemptions_url": changelist_url("admin:redemptions_redemption_changelist", member__id__exact=member.pk),
        "awards_url": changelist_url("admin:redemptions_award_changelist", member__id__exact=member.pk),
        "balances": _balances(member),
        "can_redeem": can_redeem,
        "can_award": can_award,
        "redeem_form": redeem_form,
        "award_form": AwardForm(prefix="award") if can_award else None,
        "rewards_json": rewards,
        "redeem_url": reverse("admin:loyalty_member_redeem_reward", args=[member.pk]),
        "award_url": reverse("admin:loyalty_member_award_reward", args=[member.pk]),
    }


def rollbacks_context(request, member) -> dict | None:
    if not request.user.has_perm("redemptions.view_rollback"):
        return None
    return {
        "rollbacks": selectors.member_rollbacks(member, limit=RECENT),
        "limit": RECENT,
        "list_url": changelist_url("admin:redemptions_rollback_changelist", member__id__exact=member.pk),
    }


def _member(member_admin, request, object_id: str, perm: str):
    member = member_admin.get_object(request, unquote(object_id))
    if member is None:
        raise Http404("No such member.")
    if not (member_admin.has_view_or_change_permission(request, member) and request.user.has_perm(perm)):
        raise PermissionDenied
    return member


def _back(member) -> HttpResponseRedirect:
    return HttpResponseRedirect(reverse("admin:loyalty_member_change", args=[member.pk]) + "#panel-rewards")


def _describe(redemption: Redemption) -> str:
    parts = [f"#{redemption.pk}: {redemption.quantity} × {redemption.reward.name}"]
    if redemption.points_spent:
        parts.append(f"for {redemption.points_spent:,} {redemption.metric.code if redemption.metric_id else 'points'}")
    text = " ".join(parts)
    if redemption.approval_status == Redemption.ApprovalStatus.SUBMITTED:
        text += " — waiting for approval"
    if redemption.issued_code_id:
        text += f" — code {redemption.issued_code.code}"
    return text


def rewards_urls(member_admin) -> list:
    def redeem_view(request, object_id):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        member = _member(member_admin, request, object_id, REDEEM)
        form = RedeemForm(request.POST, prefix="redeem")
        if not form.is_valid():
            member_admin.message_user(request, f"Not redeemed. {form_errors_text(form)}", messages.ERROR)
            return _back(member)
        try:
            redemption = services.redeem_reward(
                member=member,
                reward=form.cleaned_data["reward"],
                quantity=form.cleaned_data["quantity"],
                actor=request.user,
                channel=Redemption.Channel.ADMIN,
            )
        except DomainError as exc:
            member_admin.message_user(request, f"Not redeemed. {exc.detail}", messages.ERROR)
        else:
            member_admin.message_user(request, f"Redeemed {_describe(redemption)}.", messages.SUCCESS)
        return _back(member)

    def award_view(request, object_id):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        member = _member(member_admin, request, object_id, AWARD)
        form = AwardForm(request.POST, prefix="award")
        if not form.is_valid():
            member_admin.message_user(request, f"Not awarded. {form_errors_text(form)}", messages.ERROR)
            return _back(member)
        try:
            award = services.award_reward(
                member=member,
                reward=form.cleaned_data["reward"],
                reason=form.cleaned_data["reason"],
                actor=request.user,
                channel=Redemption.Channel.ADMIN,
            )
        except DomainError as exc:
            member_admin.message_user(request, f"Not awarded. {exc.detail}", messages.ERROR)
        else:
            member_admin.message_user(request, f"Awarded {_describe(award)}.", messages.SUCCESS)
        return _back(member)

    view = member_admin.admin_site.admin_view
    return [
        path("<path:object_id>/redeem-reward/", view(redeem_view), name="loyalty_member_redeem_reward"),
        path("<path:object_id>/award-reward/", view(award_view), name="loyalty_member_award_reward"),
    ]


register_member_panel(
    MemberPanel(
        key="rewards",
        title="Rewards",
        template="admin/redemptions/member/_rewards.html",
        context=rewards_context,
        order=10,
        urls=rewards_urls,
        actions=(
            PageAction(
                "loyalty_member_redeem_reward", "Redeem a reward (member page)", ("loyalty.view_member", REDEEM)
            ),
            PageAction("loyalty_member_award_reward", "Award a reward (member page)", ("loyalty.view_member", AWARD)),
        ),
    )
)
register_member_panel(
    MemberPanel(
        key="rollbacks",
        title="Rollbacks",
        template="admin/redemptions/member/_rollbacks.html",
        context=rollbacks_context,
        order=20,
    )
)
