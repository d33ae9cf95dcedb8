"""The admin toolkit every app's admin modules import (by these names only).

- lists: ``BigListMixin``, ``ExactSearchMixin``, ``ChangeListGuardMixin``, ``ChangeListExportMixin``,
  ``ReadOnlyAdminMixin``, ``ReadOnlyInline``, ``ViewOnlyMixin``, ``NoDeleteMixin``,
  ``FastActionCheckboxMixin``, ``FastCountPaginator``, ``LastErrorColumnMixin``,
  and the filters ``InputFilter`` (typed values and ranges) and ``CreatedWithinFilter``;
- history and saving: ``HistoryAdmin``, ``ServiceManagedHistoryAdmin``, ``ServiceSaveMixin``,
  ``DurableSaveMixin``;
- actions: ``ObjectAction`` + ``ObjectActionsMixin`` (buttons on an object's page), ``RowButton``,
  ``bulk_action``/``run_each`` (list actions), ``render_confirm`` (the one confirm page),
  ``PageAction`` (the declaration of a hand-written page);
- queues: ``QueueMixin`` (an approval queue: the change list in queue mode);
- links: ``link``, ``changelist_link``, ``admin_url``, ``changelist_url``.

How to add an action: docs/admin-toolkit.md.
"""

from loyalty.forms import form_errors_text

from .actions import (
    MAX_ROWS_PER_ACTION,
    Done,
    ObjectAction,
    ObjectActionsMixin,
    PageAction,
    RowButton,
    bounded,
    bulk_action,
    confirmed,
    perm_checker,
    render_confirm,
    run_each,
    safe_next,
)
from .history import DurableSaveMixin, HistoryAdmin, ServiceManagedHistoryAdmin, ServiceSaveMixin
from .links import admin_url, changelist_link, changelist_url, link, signed
from .lists import (
    BigListMixin,
    ChangeListExportMixin,
    ChangeListGuardMixin,
    CreatedWithinFilter,
    ExactSearchMixin,
    FastActionCheckboxMixin,
    FastCountPaginator,
    InputFilter,
    LastErrorColumnMixin,
    NoDeleteMixin,
    ReadOnlyAdminMixin,
    ReadOnlyInline,
    ViewOnlyMixin,
)
from .queues import QueueMixin

__all__ = [
    "MAX_ROWS_PER_ACTION",
    "BigListMixin",
    "ChangeListExportMixin",
    "ChangeListGuardMixin",
    "CreatedWithinFilter",
    "Done",
    "DurableSaveMixin",
    "ExactSearchMixin",
    "FastActionCheckboxMixin",
    "FastCountPaginator",
    "HistoryAdmin",
    "InputFilter",
    "LastErrorColumnMixin",
    "NoDeleteMixin",
    "ObjectAction",
    "ObjectActionsMixin",
    "QueueMixin",
    "PageAction",
    "ReadOnlyAdminMixin",
    "ReadOnlyInline",
    "RowButton",
    "ServiceManagedHistoryAdmin",
    "ServiceSaveMixin",
    "ViewOnlyMixin",
    "admin_url",
    "bounded",
    "bulk_action",
    "changelist_link",
    "changelist_url",
    "confirmed",
    "form_errors_text",
    "link",
    "perm_checker",
    "render_confirm",
    "run_each",
    "safe_next",
    "signed",
]
