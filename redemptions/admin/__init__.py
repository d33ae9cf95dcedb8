"""The redemptions admin: one module per concern, registered on import.

``responses`` (Redemptions and Awards screens, approval queue, bulk actions, import/export),
``rollbacks`` (Rollbacks screen, approval queue, trends), ``members`` (the member page's
Rewards and Rollbacks panels) and ``catalog`` (the Reward page with its Responses section and
code pool, and the RewardCodePool screen).
"""

from . import catalog, members, responses, rollbacks  # noqa: F401
