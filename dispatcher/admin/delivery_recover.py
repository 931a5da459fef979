"""Recover from the admin: after an outage, queue again every failed delivery of one webhook or channel since
a time, with the service the REST API (POST /deliveries/recover/) and the deliveries_recover command use."""
import datetime

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from config.admin_base import scoped
from dispatcher.delivery import RECOVER_MAX, deliveries_recover
from dispatcher.models import Channel, Webhook
from dispatcher.models.delivery_filters import DeliveryFilters


class RecoverForm(forms.Form):
    webhook = forms.ModelChoiceField(queryset=Webhook.objects.none(), required=False)
    channel = forms.ModelChoiceField(queryset=Channel.objects.none(), required=False)
    since = forms.DateTimeField(help_text="When the outage began (your time zone's time).",
                                widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    until = forms.DateTimeField(required=False, help_text="Optional: only deliveries created before this time "
                                                          "(default: now).",
                                widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    limit = forms.IntegerField(min_value=1, max_value=RECOVER_MAX, initial=RECOVER_MAX,
                               help_text="At most this many, the oldest first; recover again to continue.")
    dry_run = forms.BooleanField(required=False, initial=True, label="Only count them (dry run)")

    def __init__(self, *args, user, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["webhook"].queryset = scoped(Webhook.objects.select_related("organization"), user)  # type: ignore[attr-defined]
        self.fields["channel"].queryset = scoped(Channel.objects.select_related("organization"), user)  # type: ignore[attr-defined]

    def clean(self) -> dict:
        data = super().clean() or {}
        if bool(data.get("webhook")) == bool(data.get("channel")):
            raise ValidationError("Choose either a webhook or a channel.")
        since, until = data.get("since"), data.get("until")
        if since and until and until <= since:
            self.add_error("until", "The end must come after the start.")
        return data


def recover_view(request: HttpRequest, *, context: dict) -> HttpResponse:
    """The form (GET), then a dry run or the recover itself (POST): the numbers as a message on the log."""
    form = RecoverForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        sender: Webhook | Channel = data["webhook"] or data["channel"]
        filters = DeliveryFilters(
            webhook=sender.pk if isinstance(sender, Webhook) else None,
            channel=sender.public_id if isinstance(sender, Channel) else None,
            created_after=data["since"], created_before=data["until"] or timezone.now())  # as the API: until now
        try:
            recovered = deliveries_recover(organization=sender.organization_id, filters=filters,
                                           by=request.user.get_username(), limit=data["limit"],
                                           dry_run=data["dry_run"])
        except (ValidationError, Webhook.DoesNotExist, Channel.DoesNotExist) as error:  # deleted meanwhile
            form.add_error(None, error if isinstance(error, ValidationError) else str(error))
        else:
            verb = "would be queued again (dry run: nothing was queued)" if data["dry_run"] else "queued again"
            messages.success(request, f"{recovered.queued} failed deliveries of {sender} since "
                                      f"{_shown(data['since'])} {verb}.")
            return HttpResponseRedirect(reverse("admin:dispatcher_delivery_changelist"))
    return TemplateResponse(request, "admin/dispatcher/delivery/recover.html",
                            {**context, "form": form, "title": "Recover failed deliveries"})


def _shown(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M")
