"""Health check for Celery workers (container HEALTHCHECK, monitoring probes).

Exit status 0: the workers answered a ping and due work is not piling up; 1 otherwise, with the reason.
"""
import json

from celery import current_app
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from dispatcher.models import Delivery
from dispatcher.models.deliveries import WAITING_STATUSES


class Command(BaseCommand):
    help = "Ping the delivery workers and check that the oldest due delivery is not older than a limit."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--hostname", action="append", default=[],
                            help="Worker node name to ping (celery@host); repeat for several. Default: any worker.")
        parser.add_argument("--timeout", type=float, default=5.0, help="Seconds to wait for answers (default 5).")
        parser.add_argument("--max-due-age", type=float, default=300.0,
                            help="Fail when the oldest due delivery has waited longer than this many seconds "
                            "(default 300; 0 turns the check off).")

    def handle(self, *args, hostname: list[str], timeout: float, max_due_age: float, **options) -> None:
        now = timezone.now()
        try:
            replies = current_app.control.ping(destination=hostname or None, timeout=timeout)
        except Exception as error:  # e.g. a broker without broadcast (the file-system default) or one that is down
            raise CommandError(f"Could not ping workers through the broker: {type(error).__name__}: {error}") from error
        answered = sorted(name for reply in replies for name in reply)
        due = Delivery.objects.due(now)
        oldest = due.filter(status__in=WAITING_STATUSES).order_by("due_at").values_list("due_at", flat=True).first()
        age = max((now - oldest).total_seconds(), 0.0) if oldest else 0.0
        report = {"workers": answered, "due": due.count(), "oldest_due_age_seconds": round(age, 1)}
        self.stdout.write(json.dumps(report))
        missing = sorted(set(hostname) - set(answered))
        if not answered or missing:
            raise CommandError(f"No answer from {', '.join(missing) if missing else 'any worker'} within {timeout:g} s.")
        if max_due_age and age > max_due_age:
            raise CommandError(f"The oldest due delivery has waited {age:.0f} s (limit {max_due_age:g} s): "
                               "workers are not keeping up or not consuming the deliveries queue.")
