"""What retro adds to the operations home (loyalty.insight)."""

from __future__ import annotations

from loyalty.insight import Queue, register_queue

from . import selectors


def register() -> None:
    register_queue(
        Queue(
            key="retro_claims",
            title="Retro claims waiting for approval",
            waiting=selectors.claim_queue,
            act="approve",
            page="queue",
            instructions="Compare the purchase with the member's history; approve, or reject with a reason.",
            order=30,
        )
    )
