"""The Reward page with its Responses section and code pool, and the RewardCodePool screen.

``loyalty`` cannot know about redemptions, so this module re-registers ``Reward`` with a subclass
of ``loyalty.admin.catalog.RewardAdmin`` that adds them.
"""

from __future__ import annotations

from django.contrib import admin

from loyalty.admin.catalog import RewardAdmin as BaseRewardAdmin
from loyalty.kernel.admin import HistoryAdmin, changelist_url
from loyalty.models import Reward
from promotions.models import Campaign

from .. import selectors
from ..models import Redemption, RewardCodePool


def _campaign_autocomplete() -> tuple[str, ...]:
    """Autocomplete needs a registered Campaign admin with search fields (promotions' admin);
    until then the campaign is picked by id (raw_id_fields)."""
    campaign_admin = admin.site._registry.get(Campaign)
    return ("campaign",) if campaign_admin is not None and campaign_admin.search_fields else ()


class RewardCodePoolInline(admin.StackedInline):
    model = RewardCodePool
    fk_name = "reward"
    fields = ("campaign",)
    raw_id_fields = ("campaign",)
    extra = 0
    max_num = 1
    verbose_name = "code pool (campaign whose codes this reward issues)"
    verbose_name_plural = "code pool"

    def get_autocomplete_fields(self, request):
        return _campaign_autocomplete()


admin.site.unregister(Reward)


@admin.register(Reward)
class RewardAdmin(BaseRewardAdmin):
    """The loyalty Reward page plus a Responses section and the discount-code pool."""

    change_form_template = "admin/redemptions/reward/change_form.html"
    inlines = [*BaseRewardAdmin.inlines, RewardCodePoolInline]

    def get_inlines(self, request, obj):
        # The pool is set once the reward exists (the add form stays the catalogue's own).
        inlines = super().get_inlines(request, obj)
        return inlines if obj is not None else [i for i in inlines if i is not RewardCodePoolInline]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = extra_context or {}
        obj = self.get_object(request, object_id)
        user = request.user
        if obj is not None and user.has_perm("redemptions.view_redemption"):
            extra_context["responses"] = selectors.reward_responses(obj.pk, limit=20)
            extra_context["responses_url"] = changelist_url("redemptions.redemption", reward__id__exact=obj.pk)
            extra_context["awards_url"] = changelist_url("redemptions.award", reward__id__exact=obj.pk)
            extra_context["waiting_url"] = changelist_url("redemptions.redemption", "queue", reward__id__exact=obj.pk)
            extra_context["waiting"] = (
                Redemption.objects.filter(reward=obj, approval_status=Redemption.ApprovalStatus.SUBMITTED)
                .order_by()[:1000]
                .count()
            )
        return super().change_view(request, object_id, form_url, extra_context)


@admin.register(RewardCodePool)
class RewardCodePoolAdmin(HistoryAdmin):
    list_display = ("reward", "campaign")
    list_select_related = ("reward", "campaign")
    search_fields = ("reward__external_id", "reward__name")
    autocomplete_fields = ("reward",)
    raw_id_fields = ("campaign",)

    def get_autocomplete_fields(self, request):
        return ("reward", *_campaign_autocomplete())
