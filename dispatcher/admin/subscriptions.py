"""Admin pages for event subscription channels and endpoint health (imported by dispatcher.admin)."""
from django.contrib import admin, messages
from django.db.models import Count, Q
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from config.admin_base import CrmAdminMixin
from dispatcher.senders import channels
from dispatcher.delivery import endpoint_health as health
from dispatcher.admin.secrets import expire_previous_signing_secrets, rotate_signing_secrets, signing_secrets_html
from dispatcher.models import Channel, DeliveryStatus, Endpoint


def _log_link(label: str, **filters) -> str:
    query = "&".join(f"{key}={value}" for key, value in filters.items())
    return format_html('<a href="{}?{}">{}</a>', reverse("admin:dispatcher_delivery_changelist"), query, label)


CHANNEL_FIELDS = (
    "public_id", "organization", "owner", "events", "fields", "notify_url", "token_set", "expires_at", "verified_at",
    "is_active", "expiry_notice_sent_at", "created_at", "modified_at", "deliveries", "signing_secrets",
)


@admin.register(Channel)
class ChannelAdmin(CrmAdminMixin, admin.ModelAdmin):
    """Channels are made through the API; here they are watched, switched off or deleted."""

    list_display = ["public_id", "organization", "event_names", "notify_url", "status", "expires_at", "owner",
                    "verified_at", "deliveries"]
    list_filter = ["is_active", "organization"]
    search_fields = ["public_id", "notify_url"]
    list_select_related = ["organization", "owner"]
    fields = CHANNEL_FIELDS
    readonly_fields = tuple(f for f in CHANNEL_FIELDS if f != "is_active")
    actions = ["rotate_signing_secret", "expire_previous_signing_secret"]

    def get_fields(self, request, obj=None):
        """The signing secrets only for those who may change the channel (auditors see neither)."""
        fields = super().get_fields(request, obj)
        return fields if self.has_change_permission(request, obj) else [f for f in fields if f != "signing_secrets"]

    @admin.display(description="signing secret")
    def signing_secrets(self, obj: Channel) -> str:
        return signing_secrets_html(obj)

    @admin.action(description="Rotate signing secret (the old one keeps signing for a grace period)",
                  permissions=["change"])
    def rotate_signing_secret(self, request: HttpRequest, queryset) -> None:
        rotate_signing_secrets(self, request, queryset, "channel")

    @admin.action(description="Expire the old signing secret now", permissions=["change"])
    def expire_previous_signing_secret(self, request: HttpRequest, queryset) -> None:
        expire_previous_signing_secrets(self, request, queryset, "channel")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="events")
    def event_names(self, obj: Channel) -> str:
        return ", ".join(obj.events)

    @admin.display(description="status")
    def status(self, obj: Channel) -> str:
        return channels.channel_status(obj)

    @admin.display(description="token", boolean=True)
    def token_set(self, obj: Channel) -> bool:
        return bool(obj.token)

    @admin.display(description="deliveries")
    def deliveries(self, obj: Channel) -> str:
        return _log_link("Log", channel__id__exact=obj.pk)


ENDPOINT_FIELDS = (
    "destination", "organization", "health", "disabled_reason", "consecutive_failures", "failing_since",
    "last_success_at", "last_failure_at", "rate_limit", "held",
)


@admin.register(Endpoint)
class EndpointAdmin(CrmAdminMixin, admin.ModelAdmin):
    """Health per destination; an admin sets a rate limit here and enables a disabled destination again."""

    list_display = ["destination", "organization", "health", "consecutive_failures", "last_success_at",
                    "last_failure_at", "rate_limit", "held"]
    list_filter = [("disabled_at", admin.EmptyFieldListFilter), "organization"]
    search_fields = ["destination"]
    list_select_related = ["organization"]
    fields = ENDPOINT_FIELDS
    readonly_fields = tuple(f for f in ENDPOINT_FIELDS if f != "rate_limit")
    actions = ["enable"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # a destination appears with its first delivery

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).annotate(
            held_count=Count("deliveries", filter=Q(deliveries__status=DeliveryStatus.HELD)))

    @admin.display(description="health")
    def health(self, obj: Endpoint) -> str:
        if obj.is_disabled:
            return format_html('<strong style="color:#ba2121">Disabled</strong> since {}',
                               timezone.localtime(obj.disabled_at).strftime("%Y-%m-%d %H:%M"))
        if obj.consecutive_failures:
            return f"Failing: {obj.consecutive_failures} in a row"
        return "Healthy"

    @admin.display(description="on hold", ordering="held_count")
    def held(self, obj: Endpoint) -> str:
        count = getattr(obj, "held_count", None)
        if count is None:
            count = obj.deliveries.filter(status=DeliveryStatus.HELD).count()
        return _log_link(str(count), endpoint__id__exact=obj.pk, status__exact=DeliveryStatus.HELD) if count else "0"

    @admin.action(description="Enable and send the deliveries on hold", permissions=["change"])
    def enable(self, request: HttpRequest, queryset) -> None:
        replayed = sum(health.endpoint_enable(endpoint=e, by=request.user.get_username()) for e in queryset)
        self.message_user(request, f"{queryset.count()} destinations enabled; {replayed} deliveries on hold "
                          "queued again.", messages.SUCCESS)
