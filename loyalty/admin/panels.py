"""Extra sections on the member page, contributed by other apps' admin modules.

``loyalty`` imports none of the other apps, so e.g. redemptions registers its "Rewards" section
and its "Redeem a reward" view here instead of the member admin importing it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.http import HttpRequest
from django.urls import URLPattern


@dataclass(frozen=True)
class MemberPanel:
    key: str
    title: str
    template: str
    # (request, member) -> template context for the panel; None hides the panel for this request.
    context: Callable[[HttpRequest, Any], dict | None]
    order: int = 100
    # (member_admin) -> extra URL patterns under /admin/loyalty/member/, e.g. a POST action.
    urls: Callable[[Any], list[URLPattern]] = field(default=lambda admin: [])
    # What those URLs do and the permissions they check (loyalty.admin.base.PageAction).
    actions: tuple = ()


_PANELS: dict[str, MemberPanel] = {}


def register_member_panel(panel: MemberPanel) -> None:
    _PANELS[panel.key] = panel


def member_panels() -> list[MemberPanel]:
    return sorted(_PANELS.values(), key=lambda p: (p.order, p.key))
