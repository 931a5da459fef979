from django.core.management.base import BaseCommand, CommandError

from dispatcher import selectors

from dispatcher.senders import secret_rotation
from dispatcher.models import Channel, Webhook


class Command(BaseCommand):
    help = ("Rotate the signing secret of a webhook or a channel (the old one keeps signing for "
            "WEBHOOK_SECRET_GRACE_HOURS), or with --expire-previous stop the old one now. Prints the new secret.")

    def add_arguments(self, parser) -> None:
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--webhook", help="Webhook id or name.")
        target.add_argument("--channel", help="Channel id (ch_…).")
        parser.add_argument("--expire-previous", action="store_true",
                            help="Do not rotate: stop signing with the previous secret now.")

    def handle(self, *args, webhook: str | None, channel: str | None, expire_previous: bool, **options) -> None:
        try:
            sender = selectors.webhook_find(reference=webhook) if webhook else Channel.objects.get(public_id=channel)
        except (Webhook.DoesNotExist, Channel.DoesNotExist) as error:
            raise CommandError(str(error) if webhook else f"No channel with id {channel}.") from None
        except Channel.MultipleObjectsReturned:
            raise CommandError(f"Several organizations have a channel {channel}; rotate it in the admin.") from None
        if expire_previous:
            if not secret_rotation.signing_secret_expire_previous(sender=sender):
                raise CommandError(f"{sender} has no previous signing secret.")
            self.stdout.write(f"The previous signing secret of {sender} no longer signs deliveries.")
            return
        expires = secret_rotation.signing_secret_rotate(sender=sender)
        self.stdout.write(sender.signing_secret)
        self.stderr.write(f"The previous secret signs too until {expires:%Y-%m-%d %H:%M} UTC." if expires
                          else "The previous secret no longer signs (WEBHOOK_SECRET_GRACE_HOURS is 0).")
