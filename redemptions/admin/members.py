"""The member page's Rewards and Rollbacks panels, and its Redeem / Award actions.

Registered through ``loyalty.admin.panels`` so that ``loyalty`` never imports this app.
"""

from __future__ import annotations

from django.urls import reverse
from django.utils.html import format_html

from loyalty.admin.panels import MemberPanel, register_member_panel
from loyalty.kernel.admin import ObjectAction, changelist_url, link
from loyalty.models import PointBalance

from .. import selectors, services
from ..forms import AwardForm, RedeemForm
from ..models import Redemption

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
    can_redeem = REDEEM_ACTION.available(request, member)
    can_award = AWARD_ACTION.available(request, member)
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
        "redemptions_url": changelist_url("redemptions.redemption", member__id__exact=member.pk),
        "awards_url": changelist_url("redemptions.award", member__id__exact=member.pk),
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
        "list_url": changelist_url("redemptions.rollback", member__id__exact=member.pk),
    }


def _describe(redemption: Redemption) -> str:
    """What was just created, its number linked to its page (an award's on the Awards screen)."""
    screen = "redemptions.award" if redemption.kind == Redemption.Kind.AWARD else "redemptions.redemption"
    number = link(screen, f"#{redemption.pk}", pk=redemption.pk)
    text = format_html("{}: {} × {}", number, redemption.quantity, redemption.reward.name)
    if redemption.points_spent:
        metric = redemption.metric.code if redemption.metric_id else "points"
        text = format_html("{} for {} {}", text, f"{redemption.points_spent:,}", metric)
    if redemption.approval_status == Redemption.ApprovalStatus.SUBMITTED:
        text = format_html("{} — waiting for approval", text)
    if redemption.issued_code_id:
        text = format_html("{} — code {}", text, redemption.issued_code.code)
    return text


class GiveReward(ObjectAction):
    """Redeem a reward (for points) or award one (free) from the member page: one action for both.
    ``KINDS``: the permission, the form, the form's values the service takes besides the reward,
    and the past tense of the message."""

    KINDS = {
        "redeem": (REDEEM, RedeemForm, ("quantity",), "Redeemed"),
        "award": (AWARD, AwardForm, ("reason",), "Awarded"),
    }
    anchor = "panel-rewards"

    def __init__(self, kind: str) -> None:
        perm, form_class, self.fields, self.done = self.KINDS[kind]
        super().__init__(
            name=f"{kind}_reward",
            label=kind.capitalize(),
            roles_label=f"{kind.capitalize()} a reward (member page)",
            permissions=(perm,),
            form_class=form_class,
            form_prefix=kind,
            refused=f"Not {self.done.lower()}.",
        )

    def available(self, request, member) -> bool:
        return self.has_permission(request, member) and member.status == member.Status.ACTIVE

    def run(self, request, member, data):
        response = getattr(services, self.name)(
            member=member,
            reward=data["reward"],
            actor=request.user,
            channel=Redemption.Channel.ADMIN,
            **{name: data[name] for name in self.fields},
        )
        return format_html("{} {}.", self.done, _describe(response))


REDEEM_ACTION = GiveReward("redeem")
AWARD_ACTION = GiveReward("award")


register_member_panel(
    MemberPanel(
        key="rewards",
        title="Rewards",
        template="admin/redemptions/member/_rewards.html",
        context=rewards_context,
        order=10,
        object_actions=(REDEEM_ACTION, AWARD_ACTION),
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
