"""Daily webhook usage in the admin, and the usage chart."""
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone

from config.admin_base import scoped
from crm.models import Organization
from dispatcher.admin.read_only import ReadOnlyAdmin
from dispatcher.models import DailyUsage
from dispatcher.ops.usage import usage_last_days


@admin.register(DailyUsage)
class DailyUsageAdmin(ReadOnlyAdmin):
    list_display = ["day", "organization", "calls", "limit_notified"]
    list_filter = ["organization"]
    date_hierarchy = "day"

    def get_urls(self):
        chart = self.admin_site.admin_view(self.chart_view)
        return [path("chart/", chart, name="dispatcher_usage_chart"), *super().get_urls()]

    def chart_view(self, request: HttpRequest) -> HttpResponse:
        """Seed 003's usage chart: the last 7 days (or weeks) by source and by outcome, with the quota line."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        organizations = list(scoped(Organization.objects.order_by("name"), request.user))
        chosen = next((o for o in organizations if str(o.pk) == request.GET.get("organization")),
                      organizations[0] if organizations else None)
        weekly = request.GET.get("by") == "week"
        data = usage_last_days(organization=chosen, now=timezone.now(), weekly=weekly) if chosen else None
        rows = []
        if data:
            rows = [(label, data["totals"][n], {name: values[n] for name, values in data["by_source"].items()},
                     {name: values[n] for name, values in data["by_outcome"].items()})
                    for n, label in enumerate(data["labels"])]
        context = {**self.admin_site.each_context(request), "opts": self.opts, "title": "Webhook usage",
                   "organizations": organizations, "organization": chosen, "weekly": weekly, "data": data,
                   "rows": rows}
        return TemplateResponse(request, "admin/dispatcher/dailyusage/chart.html", context)
