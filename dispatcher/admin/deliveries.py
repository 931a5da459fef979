"""The delivery log in the admin: its list (rows from the selector the API uses: delivery_log.py), resend,
recover (delivery_recover.py), the CSV export of the filtered list (the same rows), and the attempts."""
import csv

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.contrib.admin.options import IncorrectLookupParameters
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.urls import path, reverse
from django.utils.html import format_html

from config.admin_base import CrmAdminMixin
from dispatcher.admin.paging import CappedCountPaginator, ErrorClassFilter, ModuleFilter, TriggerFilter
from dispatcher.admin.delivery_log import DeliveryLog
from dispatcher.admin.delivery_recover import recover_view
from dispatcher.admin.read_only import ReadOnlyAdmin
from dispatcher.delivery import deliveries_resend
from dispatcher.models import Attempt, Delivery


ATTEMPT_FIELDS = (
    "number", "started_at", "duration_ms", "status_code", "error_class", "meaning", "error_message", "outcome",
    "response_headers", "response_excerpt", "captured",
)


class AttemptInline(CrmAdminMixin, admin.TabularInline):
    model = Attempt
    fields = ATTEMPT_FIELDS
    readonly_fields = ATTEMPT_FIELDS
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="response")
    def response_excerpt(self, obj: Attempt) -> str:
        return format_html("<pre style='white-space: pre-wrap; max-width: 40em'>{}</pre>", obj.response_body[:2000])


class StatusClassFilter(admin.SimpleListFilter):
    title = "HTTP status"
    parameter_name = "http"

    def lookups(self, request, model_admin):
        return [("2", "2xx"), ("3", "3xx"), ("4", "4xx"), ("5", "5xx"), ("none", "no answer")]

    def queryset(self, request, queryset):
        return queryset  # the choice is read by DeliveryLog into DeliveryFilters.status_class: one place filters


CSV_COLUMNS = ["created", "delivery id", "organization", "webhook", "record", "source", "trigger", "status",
               "reason", "http status", "error", "attempts", "next attempt", "finished"]


class _Echo:
    def write(self, value: str) -> str:
        return value


# The webhook and the record once each: the object (a link) while it exists, else the name kept with the delivery.
DELIVERY_FIELDS = (
    "message_id", "organization", "webhook_shown", "channel", "endpoint", "record_shown", "source",
    "trigger", "status", "status_reason", "retry_policy", "attempt_count", "due_at", "created_at", "finished_at",
    "resent_by", "resent_at", "request",
)


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "organization", "webhook_name", "trigger", "record_ref", "source", "status",
                    "last_status_code", "last_duration_ms", "attempt_count", "due_at"]
    list_filter = ["status", "source", StatusClassFilter, ("created_at", admin.DateFieldListFilter), "webhook",
                   "channel", TriggerFilter, ModuleFilter, "organization"]
    # A log of millions of rows: no full COUNT(*) per page, capped filtered counts (see admin/paging.py).
    show_full_result_count = False
    paginator = CappedCountPaginator
    search_fields = ["record_ref", "webhook_name", "request_display", "trigger"]
    list_select_related = ["organization"]
    inlines = [AttemptInline]
    actions = ["resend"]
    fields = DELIVERY_FIELDS
    readonly_fields = DELIVERY_FIELDS

    def get_changelist(self, request, **kwargs):
        """Rows through the one read path of the log (the selector the API uses); the search box also finds a
        delivery by its webhook-id (msg_…) or its bare id there."""
        return DeliveryLog

    @admin.display(description="delivery id (webhook-id)")
    def message_id(self, obj: Delivery) -> str:
        return obj.message_id

    @admin.display(description="webhook")
    def webhook_shown(self, obj: Delivery) -> str:
        if obj.webhook_id is not None:
            return format_html('<a href="{}">{}</a>', reverse("admin:dispatcher_webhook_change", args=[obj.webhook_id]),
                               obj.webhook_name)
        return "-" if obj.is_subscription else f"{obj.webhook_name} (deleted)"  # a channel's: the channel row

    @admin.display(description="record")
    def record_shown(self, obj: Delivery) -> str:
        if obj.record_id is not None:
            return format_html('<a href="{}">{}</a>', reverse("admin:crm_record_change", args=[obj.record_id]),
                               obj.record_ref)
        return f"{obj.record_ref} (deleted)"

    @admin.display(description="request (secrets masked)")
    def request(self, obj: Delivery) -> str:
        if not obj.request_display:
            return "Rendered on the first attempt."
        return format_html("<pre style='white-space: pre-wrap; max-width: 60em'>{}</pre>", obj.request_display)

    def has_resend_permission(self, request) -> bool:
        return request.user.has_perm("dispatcher.resend_delivery")

    @admin.action(description="Resend selected deliveries (failed, limit reached or cancelled)", permissions=["resend"])
    def resend(self, request: HttpRequest, queryset) -> None:
        # Counted before: a list filtered on status (?status__exact=failed) no longer holds what was resent.
        selected = list(queryset.values_list("pk", flat=True))
        count = deliveries_resend(ids=selected, by=request.user.get_username())
        skipped = len(selected) - count
        note = f"; {skipped} not resent (still under way, successful, or their webhook was deleted)" if skipped else ""
        self.message_user(request, f"{count} deliveries queued again with their delivery id{note}.",
                          messages.SUCCESS if count else messages.WARNING)

    def get_urls(self):
        export = self.admin_site.admin_view(self.export_csv)
        recover = self.admin_site.admin_view(self.recover)
        return [path("export.csv", export, name="dispatcher_delivery_export"),
                path("recover/", recover, name="dispatcher_delivery_recover"), *super().get_urls()]

    def recover(self, request: HttpRequest) -> HttpResponse:
        if not self.has_resend_permission(request):
            raise PermissionDenied
        return recover_view(request, context=self.admin_site.each_context(request))

    def export_csv(self, request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
        """The log as filtered on the list page, streamed row by row (a large log is never held in memory)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            queryset = self.get_changelist_instance(request).get_queryset(request).select_related("organization")
        except IncorrectLookupParameters:  # as the list page answers a wrong filter in the URL
            return HttpResponseRedirect(reverse("admin:dispatcher_delivery_changelist") + "?e=1")
        writer = csv.writer(_Echo())

        def rows():
            yield writer.writerow(CSV_COLUMNS)
            for d in queryset.iterator(chunk_size=2000):
                yield writer.writerow([
                    d.created_at.isoformat(), d.message_id, d.organization.name, d.webhook_name, d.record_ref,
                    d.source, d.trigger, d.get_status_display(), d.status_reason, d.last_status_code or "",
                    d.last_error_class, d.attempt_count, d.due_at.isoformat() if d.due_at else "",
                    d.finished_at.isoformat() if d.finished_at else "",
                ])

        response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="webhook-log.csv"'
        return response


ATTEMPT_LOG_FIELDS = (
    "delivery", "number", "started_at", "duration_ms", "status_code", "error_class", "meaning", "error_message",
    "outcome", "response_headers", "response_body", "response_truncated", "captured",
)


@admin.register(Attempt)
class AttemptAdmin(ReadOnlyAdmin):
    """Every try of every delivery, for when the question is about attempts rather than deliveries."""

    list_display = ["started_at", "delivery", "number", "status_code", "error_class", "duration_ms", "outcome"]
    list_filter = ["outcome", ErrorClassFilter, ("started_at", admin.DateFieldListFilter), "delivery__organization"]
    search_fields = ["delivery__record_ref", "delivery__webhook_name", "error_class"]
    show_full_result_count = False
    paginator = CappedCountPaginator
    list_select_related = ["delivery"]
    fields = ATTEMPT_LOG_FIELDS
    readonly_fields = ATTEMPT_LOG_FIELDS
