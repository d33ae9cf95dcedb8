"""``manage.py roles_doc [--check]``: write the permission tables of docs/roles.md from the code."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from loyalty import permission_map

DOC = Path(settings.BASE_DIR) / "docs" / "roles.md"


class Command(BaseCommand):
    help = (
        "Rewrite the generated tables in docs/roles.md (every API endpoint and admin action, per role) "
        "from the role map and the views. --check only reports whether the file is current."
    )

    def add_arguments(self, parser):
        parser.add_argument("--check", action="store_true", help="Exit 1 if docs/roles.md is not current.")

    def handle(self, *args, check: bool = False, **options):
        text = DOC.read_text()
        new = permission_map.replace_generated(text)
        if check:
            if new != text:
                raise CommandError("docs/roles.md is out of date: run `manage.py roles_doc`.")
            self.stdout.write("docs/roles.md is current.")
            return
        if new != text:
            DOC.write_text(new)
            self.stdout.write(f"Wrote {DOC}.")
        else:
            self.stdout.write("docs/roles.md was already current.")
