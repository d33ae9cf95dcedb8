"""``manage.py create_api_key <username> [--name NAME] [--expires-in-days N]``: prints a new key once."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from loyalty import services
from loyalty.exceptions import DomainError
from loyalty.kernel import SYSTEM


class Command(BaseCommand):
    help = (
        "Create an API key for a user and print it (once: only its digest is stored). The caller sends "
        "'Authorization: Token <key>'; the user's groups decide what the key may do."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="What the key is for (default: 'Key for <username>').")
        parser.add_argument("--expires-in-days", type=int, default=None, help="Days until it expires (default never).")

    def handle(self, *args, username: str, name: str, expires_in_days: int | None, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named {username!r}.")
        try:
            created = services.create_api_key(
                owner=user,
                name=name or f"Key for {username}",
                expires_in_days=expires_in_days,
                actor=SYSTEM,  # whoever runs manage.py is trusted with the server
                reason="Created with manage.py create_api_key",
            )
        except DomainError as exc:
            raise CommandError(exc.detail) from exc
        api_key = created.api_key
        expiry = f", expires {api_key.expires_at:%Y-%m-%d %H:%M} UTC" if api_key.expires_at else ""
        self.stderr.write(f"API key {api_key.name!r} for {username} (prefix {api_key.prefix}{expiry}):")
        self.stdout.write(created.key)
        self.stderr.write("Shown once: store it now. Header: Authorization: Token <key>")
