"""Retry policies in the admin, with the schedule each one gives spelled out."""
from django.conf import settings
from django.contrib import admin
from django.utils.html import format_html, format_html_join

from config.admin_base import CrmAdminMixin
from dispatcher.delivery import retry
from dispatcher.models import RetryPolicy


@admin.register(RetryPolicy)
class RetryPolicyAdmin(CrmAdminMixin, admin.ModelAdmin):
    list_display = ["name", "code", "schedule", "max_retry_after", "failure_emails"]
    list_filter = ["failure_emails"]
    search_fields = ["name", "code"]
    fields = ["code", "name", "delays", "schedule_table", "max_retry_after", "failure_emails"]
    readonly_fields = ["schedule_table"]

    @admin.display(description="attempts (from the first)")
    def schedule(self, obj: RetryPolicy) -> str:
        return retry.schedule_text(obj)

    @admin.display(description="when each retry happens")
    def schedule_table(self, obj: RetryPolicy) -> str:
        if not obj.pk:
            return "Shown once the policy is saved."
        jitter = round(settings.WEBHOOK_RETRY_JITTER * 100)
        rows = [("first attempt", "at once", "0 s")] + [
            (f"retry {n}", f"{retry.duration_text(delay)} after the failed attempt", retry.duration_text(total))
            for n, (delay, total) in enumerate(retry.schedule(obj), start=1)]
        return format_html(
            "<table><tr><th>attempt</th><th>waits</th><th>after the first attempt</th></tr>{}</table>"
            "<p class='help'>Each delay is moved at random by up to ±{}% (WEBHOOK_RETRY_JITTER); a 429 or 503 "
            "with Retry-After waits as asked, up to the longest Retry-After honoured. 410 Gone is never retried "
            "and disables the destination.</p>",
            format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>", rows), jitter)
