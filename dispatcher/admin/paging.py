"""Log pages that cost the same with a thousand rows or millions: counts are capped, filter choices come
from small tables or recent rows, never from a DISTINCT over the whole log; dates are filtered with fixed
ranges (today, past 7 days, this month, this year) instead of a date hierarchy, whose links need a
DISTINCT over every matching row."""
from django.contrib import admin
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.utils.functional import cached_property

from config.admin_base import scoped
from crm.models import Module

COUNT_CAP = 10_000  # rows counted at most; beyond it the page says "10000" and filters narrow it down
RECENT_ROWS = 5_000  # rows whose values the "recent" filters offer


class CappedCountPaginator(Paginator):
    """Counts at most COUNT_CAP + 1 rows (COUNT over a LIMIT subquery), so paging a huge log stays cheap."""

    @cached_property
    def count(self) -> int:
        rows = self.object_list
        if isinstance(rows, QuerySet):
            return rows[:COUNT_CAP + 1].count()
        return len(rows)


class RecentValuesFilter(admin.SimpleListFilter):
    """Choices from the newest RECENT_ROWS rows (an index scan), not a DISTINCT over the whole table."""

    field_name = ""

    def lookups(self, request, model_admin):
        # The login's own rows only (a trigger names a workflow rule): the admin's queryset is scoped.
        newest = model_admin.get_queryset(request).order_by("-pk").values_list(self.field_name,
                                                                               flat=True)[:RECENT_ROWS]
        return [(value, value) for value in sorted(set(newest)) if value]

    def queryset(self, request, queryset):
        return queryset.filter(**{self.field_name: self.value()}) if self.value() else queryset


class TriggerFilter(RecentValuesFilter):
    title = "trigger (recent)"
    parameter_name = "trigger"
    field_name = "trigger"


class ErrorClassFilter(RecentValuesFilter):
    title = "error (recent)"
    parameter_name = "error_class"
    field_name = "error_class"


class ModuleFilter(admin.SimpleListFilter):
    """The webhook's module, with choices from the module table."""

    title = "module"
    parameter_name = "module"

    def lookups(self, request, model_admin):
        modules = scoped(Module.objects.filter(supports_webhooks=True), request.user)  # only the login's own
        names = modules.order_by("api_name").values_list("api_name", flat=True)
        return [(name, name) for name in dict.fromkeys(names)]

    def queryset(self, request, queryset):
        return queryset.filter(webhook__module__api_name=self.value()) if self.value() else queryset
