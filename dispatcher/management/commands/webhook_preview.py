from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from crm.models import Record
from dispatcher import selectors
from dispatcher.senders import webhooks as services
from dispatcher.senders.webhook_checks import webhook_unsupported_merge_fields
from dispatcher.models import Webhook


class Command(BaseCommand):
    help = "Print the request a webhook would send for a record (secrets masked)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("webhook", help="Webhook id or name.")
        parser.add_argument("--record", type=int, required=True, help="Id of a record of the webhook's module.")

    def handle(self, *args, webhook: str, record: int, **options) -> None:
        try:
            hook = selectors.webhook_find(reference=webhook)
        except Webhook.DoesNotExist as error:
            raise CommandError(str(error)) from None
        target = Record.objects.select_related("module", "owner").filter(pk=record).first()
        if target is None:
            raise CommandError(f"No record with id {record}.")
        try:
            rendered = services.webhook_preview(webhook=hook, record=target)
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from None
        self.stdout.write(rendered.as_text())
        for token, reason in webhook_unsupported_merge_fields(webhook=hook):
            self.stderr.write(self.style.WARNING(f"warning: {token} is sent as ${{Unsupported_Field}}: {reason}."))
