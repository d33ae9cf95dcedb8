from django.core.management.base import BaseCommand, CommandError

from loyalty.selectors import verify_ledger


class Command(BaseCommand):
    help = "Prove that cached balances equal the sum of ledger entries and that lot remainders agree."

    def add_arguments(self, parser):
        parser.add_argument("--member", action="append", type=int, dest="members", help="Member id (repeatable).")

    def handle(self, *args, members=None, **options):
        report = verify_ledger(member_ids=members)
        for problem in report.problems:
            self.stderr.write(problem)
        summary = (
            f"{report.accounts_checked} accounts, {report.lots_checked} lots, "
            f"{report.debits_checked} debits checked; {len(report.problems)} problems."
        )
        if not report.ok:
            raise CommandError(summary)
        self.stdout.write(self.style.SUCCESS(f"Ledger consistent: {summary}"))
