import datetime

from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from crm.api.errors import ApiError
from crm.api.params import DATETIME_EXAMPLE, datetime_param
from crm.models import Organization
from dispatcher.delivery import RECOVER_MAX, deliveries_recover
from dispatcher.models import Webhook
from dispatcher.selectors import DeliveryFilters


class Command(BaseCommand):
    help = ("Recover after an outage, as POST /api/v1/deliveries/recover/ does: queue again every failed delivery "
            "of one webhook or one channel created since a time, each with its delivery id. Fix the receiver "
            "first; --dry-run tells how many would be queued.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--organization", required=True, help="The organization's name or id.")
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--webhook", help="Webhook id or name.")
        target.add_argument("--channel", help="Channel id (ch_…).")
        parser.add_argument("--since", required=True,
                            help=f"Deliveries created at or after it (ISO 8601, e.g. {DATETIME_EXAMPLE}; no offset: UTC).")
        parser.add_argument("--until", help="Deliveries created before it; default now.")
        parser.add_argument("--record", type=int, help="Only the deliveries of this record (its id).")
        parser.add_argument("--error-class", help="Only those whose last attempt failed so (timeout, http_5xx, …).")
        parser.add_argument("--limit", type=int, default=RECOVER_MAX,
                            help=f"At most this many, the oldest first (default {RECOVER_MAX}); run again for more.")
        parser.add_argument("--dry-run", action="store_true", help="Queue nothing: print how many would be queued.")

    def handle(self, *args, organization: str, webhook: str | None, channel: str | None, since: str,
               until: str | None, record: int | None, error_class: str | None, limit: int, dry_run: bool,
               **options) -> None:
        if limit < 1:
            raise CommandError("--limit: give a number of 1 or more.")
        owner = _organization(organization)
        filters = DeliveryFilters(
            webhook=_webhook_id(owner, webhook) if webhook is not None else None, channel=channel, record=record,
            error_class=error_class, created_after=_moment(since, "since"),
            created_before=_moment(until, "until") if until is not None else timezone.now())
        try:
            done = deliveries_recover(organization=owner, filters=filters, limit=limit, dry_run=dry_run,
                                      by="deliveries_recover command")
        except ObjectDoesNotExist as error:
            raise CommandError(f"{error} (organization {owner.name})") from None
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from None
        for message_id in done.ids if options["verbosity"] > 1 else ():
            self.stdout.write(message_id)
        what = f"webhook {webhook}" if webhook is not None else f"channel {channel}"
        if dry_run:
            self.stdout.write(f"{done.queued} failed deliveries of {what} would be queued again (dry run: nothing "
                              "was queued).")
        else:
            self.stdout.write(self.style.SUCCESS(f"{done.queued} failed deliveries of {what} queued again with "
                                                 "their delivery id."))
        if done.queued >= limit:
            self.stderr.write(f"That is the limit of {limit}: run the command again for the rest.")


def _organization(reference: str) -> Organization:
    """By name, or by id (as login_create takes it)."""
    found = Organization.objects.filter(name=reference).first()
    if found is None and reference.isdecimal() and reference.isascii():
        found = Organization.objects.filter(pk=int(reference)).first()
    if found is None:
        names = ", ".join(Organization.objects.order_by("name").values_list("name", flat=True)[:20]) or "none"
        raise CommandError(f"There is no organization “{reference}” (organizations: {names}).")
    return found


def _webhook_id(organization: Organization, reference: str) -> int:
    """By id, or by name (names are unique in an organization)."""
    if reference.isdecimal() and reference.isascii():
        return int(reference)  # deliveries_recover says when the organization has no such webhook
    found = Webhook.objects.filter(organization=organization, name=reference).values_list("pk", flat=True).first()
    if found is None:
        raise CommandError(f"There is no webhook named “{reference}” (organization {organization.name}).")
    return found


def _moment(value: str, name: str) -> datetime.datetime:
    """As the API reads its date/times (crm/api/params.py), with the same messages."""
    try:
        moment = datetime_param(value, name=name)
    except ApiError as error:
        raise CommandError(f"--{name}: {error.details['fields'][name][0]}") from None
    if moment is None:  # datetime_param gives None for None only
        raise CommandError(f"--{name}: give a date and time, e.g. {DATETIME_EXAMPLE}.")
    return moment
