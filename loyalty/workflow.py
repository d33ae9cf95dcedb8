"""Kept for old imports: the transition helpers live in ``loyalty.kernel``."""

from loyalty.kernel.transitions import check_transition, save_with_history, transition

__all__ = ["check_transition", "save_with_history", "transition"]
