"""Counters that concurrent processes share without overshooting a limit: the daily webhook quota
(dispatcher.ops.quotas), usage counts (dispatcher.ops.usage) and the API's per-key rate (crm.services)."""
from django.db import models
from django.db.models import F


def counter_increment(model: type[models.Model], keys: dict, *, below: int | None = None,
                      extra: dict[str, int] | None = None, amount: int = 1) -> bool:
    """Add amount to the ``calls`` of the row keys select (and the extra amounts to their columns), creating
    the row on first use; with below, only while calls stay under it. One conditional UPDATE decides,
    so concurrent workers never overshoot."""
    counter = model._default_manager.filter(**keys)
    target = counter if below is None else counter.filter(calls__lt=below)
    changes = {"calls": F("calls") + amount, **{column: F(column) + amount for column, amount in (extra or {}).items()}}
    if target.update(**changes):
        return True
    # No row yet (the first call of the day) or the limit is reached: make sure it exists, then decide.
    model._default_manager.get_or_create(**keys)
    return target.update(**changes) == 1
