"""Extra sections on the member page, contributed by other apps' admin modules.

``loyalty`` imports none of the other apps, so e.g. redemptions registers its "Rewards" section
and its "Redeem a reward" action here instead of the member admin importing it. A panel's
``object_actions`` (``loyalty.kernel.admin.ObjectAction``) become URLs of the member admin, and
are declared for docs/roles.md and the permission matrix as ``actions``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.http import HttpRequest
from django.urls import URLPattern

from loyalty.kernel.registry import Registry


@dataclass(frozen=True)
class MemberPanel:
    key: str
    title: str
    template: str
    # (request, member) -> template context for the panel; None hides the panel for this request.
    context: Callable[[HttpRequest, Any], dict | None]
    order: int = 100
    # The panel's buttons and forms (POST /admin/loyalty/member/<id>/<action>/).
    object_actions: tuple = ()
    # (member_admin) -> other URL patterns under /admin/loyalty/member/ (none today).
    urls: Callable[[Any], list[URLPattern]] = field(default=lambda admin: [])
    # The page actions of those URLs (loyalty.kernel.admin.PageAction); the object actions' own
    # are added.
    actions: tuple = ()

    def __post_init__(self) -> None:
        from loyalty.models import Member

        derived = tuple(action.page_action(Member._meta) for action in self.object_actions)
        object.__setattr__(self, "actions", (*derived, *self.actions))


PANELS: Registry[MemberPanel] = Registry()
register_member_panel = PANELS.register
member_panels = PANELS.entries
