"""What retro adds to the operations home (loyalty.insight)."""

from __future__ import annotations

from loyalty.insight import Queue, register_queue

from . import selectors


def register() -> None:
    register_queue(
        Queue(
            key="retro_claims",
            title="Retro claims waiting for approval",
            stats=selectors.claim_queue_stats,
            url_name="admin:retro_retroclaim_queue",
            view_perms=("retro.view_retroclaim",),
            act_perms=("retro.approve_retroclaim",),
            instructions="Compare the purchase with the member's history; approve, or reject with a reason.",
            order=30,
        )
    )
