"""The report's daily rollup: per-day figures of closed days, computed once and summed for a range."""

from django.db import models


class InsightDay(models.Model):
    """A closed day (program time zone) whose figures are stored in ``DailyFigure``.

    The row is the proof that the day was computed: a day without figures (nothing happened) still
    has its ``InsightDay``, so it is not computed again. Deleting it reopens the day (see
    ``loyalty.services.insight.reopen_days``); the next report or the beat job computes it again.
    """

    day = models.DateField(unique=True)
    computed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-day"]
        default_permissions = ()  # derived rows: superusers may look (loyalty/admin/insight.py), nobody edits

    def __str__(self) -> str:
        return self.day.isoformat()


class DailyFigure(models.Model):
    """One figure of one closed day: ``key`` names the figure (registered by the app that owns it,
    e.g. ``redemptions.points``), ``dim`` its breakdown (a metric or tier id; "" for none)."""

    day = models.DateField()
    key = models.CharField(max_length=64)
    dim = models.CharField(max_length=64, blank=True, default="")
    value = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["day", "key", "dim"]
        default_permissions = ()
        constraints = [models.UniqueConstraint(fields=["key", "day", "dim"], name="dailyfigure_key_day_dim")]

    def __str__(self) -> str:
        return f"{self.day} {self.key}[{self.dim}] = {self.value}"
