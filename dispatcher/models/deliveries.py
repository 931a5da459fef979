"""The delivery log and the queue: one Delivery per webhook call to make, one Attempt per try."""
import uuid
from collections.abc import Iterable
from typing import Any

from django.db import models
from django.utils import timezone

from crm.models import Organization, Record
from dispatcher.transport import errors
from dispatcher.crypto import EncryptedTextField
from dispatcher.models.channels import Channel
from dispatcher.models.endpoints import Endpoint
from dispatcher.models.retry_policies import RetryPolicy
from dispatcher.models.webhooks import Webhook


class DeliveryStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    DISPATCHED = "dispatched", "Dispatched"
    RETRY = "retry", "Retry"
    SUCCESS = "success", "Success"
    FAILED = "failed", "Failed"
    LIMIT_REACHED = "limit_reached", "Daily limit reached"
    CANCELLED = "cancelled", "Cancelled"
    HELD = "held", "On hold"
    THROTTLED = "throttled", "Waiting for a rate slot"


TERMINAL_STATUSES = (
    DeliveryStatus.SUCCESS, DeliveryStatus.FAILED, DeliveryStatus.LIMIT_REACHED, DeliveryStatus.CANCELLED,
)
WAITING_STATUSES = (DeliveryStatus.QUEUED, DeliveryStatus.RETRY, DeliveryStatus.THROTTLED)
#: Status a delivery is created with: waiting to be sent, or logged as never sent (delivery/states.py).
INITIAL_STATUSES = (DeliveryStatus.QUEUED, DeliveryStatus.CANCELLED)


class IllegalMove(ValueError):
    """A status move or a new delivery's status the state machine does not allow: a bug, never a user's
    mistake."""


def _initial_check(status: str) -> None:
    if status not in INITIAL_STATUSES:
        raise IllegalMove(f"A delivery cannot be created as {status}; it is created Queued or Cancelled and "
                          "moved on by dispatcher/delivery/states.py.")


class DeliverySource(models.TextChoices):
    WORKFLOW = "workflow", "Workflow rule"
    REPLAY = "replay", "Replay"
    TEST = "test", "Test send"
    API = "api", "API"
    SUBSCRIPTION = "subscription", "Event subscription"


class DeliveryQuerySet(models.QuerySet):
    def due(self, now) -> "DeliveryQuerySet":
        """Waiting and due, or dispatched to a worker whose lease has run out (it died or hung).

        A delivery with an ordering key waits while an earlier one with the same key has not ended,
        so the events of one record reach a channel in order.
        """
        earlier_pending = Delivery.objects.filter(
            ordering_key=models.OuterRef("ordering_key"), pk__lt=models.OuterRef("pk"),
        ).exclude(status__in=TERMINAL_STATUSES)
        return self.filter(
            models.Q(status__in=WAITING_STATUSES, due_at__lte=now)
            | models.Q(status=DeliveryStatus.DISPATCHED, lease_expires_at__lte=now)
        ).filter(models.Q(ordering_key="") | ~models.Exists(earlier_pending))

    # Every way the ORM inserts a delivery refuses a status it cannot be born with: whatever a delivery
    # became, states.py moved it there (the table's CHECK constraints guard the columns that go with it).
    def create(self, **kwargs: Any) -> Any:
        _initial_check(kwargs.get("status", DeliveryStatus.QUEUED))
        return super().create(**kwargs)

    def bulk_create(self, objs: Iterable[Any], *args: Any, **kwargs: Any) -> list[Any]:
        objs = list(objs)
        for delivery in objs:
            _initial_check(delivery.status)
        return super().bulk_create(objs, *args, **kwargs)

    def create_historical(self, **fields: Any) -> "Delivery":
        """A delivery in any status, as if the engine had moved it there: for tests, the demo seed and
        benchmarks only. A final one is finished now unless finished_at is given; the CHECK constraints still
        hold (a Dispatched one needs its claim token and lease)."""
        return self.bulk_create_historical([Delivery(**fields)])[0]

    def bulk_create_historical(self, objs: Iterable[Any], **kwargs: Any) -> list[Any]:
        """Many deliveries in any status with one insert (see create_historical)."""
        objs = list(objs)
        now = timezone.now()
        for delivery in objs:
            if delivery.status in TERMINAL_STATUSES and delivery.finished_at is None:
                delivery.finished_at = now
        return super().bulk_create(objs, **kwargs)


class Delivery(models.Model):
    """One webhook call for one record and trigger, from enqueue to its terminal state."""

    public_id = models.UUIDField("delivery id", default=uuid.uuid4, unique=True, editable=False,
                                 help_text="Sent as the webhook-id header (msg_…), the same on every retry.")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="deliveries",
                                     help_text="Whose quota and log this delivery counts in.")
    webhook = models.ForeignKey(Webhook, on_delete=models.SET_NULL, null=True, related_name="deliveries",
                                help_text=("The webhook that sends it; empty for a channel's delivery or once the "
                                           "webhook is deleted."))
    channel = models.ForeignKey(Channel, on_delete=models.SET_NULL, null=True, blank=True, related_name="deliveries",
                                help_text="For notifications of an event subscription instead of a webhook.")
    webhook_name = models.CharField("webhook", max_length=100,
                                    help_text="The webhook's name, or the channel's id; kept if it is deleted.")
    endpoint = models.ForeignKey(Endpoint, on_delete=models.SET_NULL, null=True, blank=True, related_name="deliveries",
                                 help_text="The destination, known from the first attempt on.")
    ordering_key = models.CharField(
        "ordering key", max_length=80, blank=True, editable=False,
        help_text="Deliveries with the same key are sent one after another, in the order they were made.")
    rate_slot_at = models.DateTimeField(
        "reserved send time", null=True, blank=True, editable=False,
        help_text="A slot under the destination's rate limit, reserved while it waited.")
    record = models.ForeignKey(Record, on_delete=models.SET_NULL, null=True, blank=True, related_name="deliveries",
                               help_text=("The record it was made for; empty once the record is deleted (record_ref "
                                          "keeps its name)."))
    record_ref = models.CharField("record", max_length=150, help_text="Module and id, kept if the record is deleted.")
    source = models.CharField("source", max_length=20, choices=DeliverySource.choices, default=DeliverySource.WORKFLOW,
                              help_text=("What made it: a workflow rule, a replay, a test send, the API or an event "
                                         "subscription."))
    trigger = models.CharField("trigger", max_length=200, blank=True,
                               help_text="What caused it, e.g. the workflow rule and event.")
    retry_policy = models.ForeignKey(RetryPolicy, on_delete=models.PROTECT, related_name="+",
                                     help_text=("The schedule of retries it follows, taken from the webhook when it "
                                                "was made."))
    status = models.CharField("status", max_length=20, choices=DeliveryStatus.choices, default=DeliveryStatus.QUEUED,
                              help_text=("Queued, Dispatched (being sent), Retry, Success, Failed, or why it waits or "
                                         "ended."))
    status_reason = models.CharField("reason", max_length=300, blank=True,
                                     help_text="Why it ended this way, in words.")
    due_at = models.DateTimeField("next attempt", null=True, blank=True,
                                  help_text=("When a worker takes it next: the first send, the next retry or its rate "
                                             "slot."))
    lease_expires_at = models.DateTimeField("lease expires", null=True, blank=True,
                                            help_text=("While dispatched: when another worker may take it over (the "
                                                       "first died or hung)."))
    claim_token = models.UUIDField("claim", null=True, blank=True, editable=False,
                                   help_text="Proves which worker holds it while dispatched.")
    attempt_count = models.PositiveSmallIntegerField("attempts", default=0,
                                                     help_text="Attempts made in all, resends included.")
    cycle_start = models.PositiveSmallIntegerField(
        "attempts before the last resend", default=0, editable=False,
        help_text="A resend starts the retry policy again from here.",
    )
    resent_by = models.CharField("last resent by", max_length=150, blank=True,
                                 help_text="Who resent it last: the admin's login, or the API key.")
    resent_at = models.DateTimeField("last resent", null=True, blank=True, help_text="When it was resent last.")
    # The request is rendered once, on the first attempt, and resent as is: encrypted, as it holds secrets.
    request_sealed = EncryptedTextField("request", blank=True, editable=False,
                                        help_text=("The request as rendered on the first attempt, encrypted (it holds "
                                                   "secrets); every retry sends it again."))
    request_display = models.TextField("request (masked)", blank=True,
                                       help_text="The rendered request with secrets masked.")
    last_status_code = models.PositiveSmallIntegerField("HTTP status", null=True, blank=True,
                                                        help_text="The receiver's HTTP status on the last attempt.")
    last_error_class = models.CharField("error", max_length=40, blank=True,
                                        help_text=("Why the last attempt failed, e.g. timeout, connection_error, "
                                                   "http_5xx."))
    last_duration_ms = models.PositiveIntegerField("duration (ms)", null=True, blank=True,
                                                   help_text="Of the last attempt.")
    created_at = models.DateTimeField("created", auto_now_add=True, db_index=True,
                                      help_text="When it was made (by the rule, the resend or the API).")
    finished_at = models.DateTimeField("finished", null=True, blank=True,
                                       help_text="When it reached Success, Failed, Daily limit reached or Cancelled.")

    objects = DeliveryQuerySet.as_manager()

    # Not a column: the engine sets it when this attempt rendered the request, so that the attempt's outcome
    # stores request_sealed and request_display with it (a retry resends the stored request as it is).
    request_prepared: bool = False

    class Meta:
        verbose_name = "delivery"
        verbose_name_plural = "deliveries"
        ordering = ["-id"]
        permissions = [("resend_delivery", "Can resend a delivery")]
        constraints = [
            # One kind of sender: a subscription's delivery never points to a webhook, any other never to a
            # channel. Either pointer may be empty: a deleted sender leaves its log (SET_NULL).
            models.CheckConstraint(
                condition=(models.Q(source=DeliverySource.SUBSCRIPTION, webhook__isnull=True)
                           | (~models.Q(source=DeliverySource.SUBSCRIPTION) & models.Q(channel__isnull=True))),
                name="delivery_one_sender_kind",
                violation_error_message="A delivery is sent by a webhook or by a channel, never by both.",
            ),
            # What states.py promises, held by the table whoever writes it (the ORM, batch SQL, a console):
            # a claim (token and lease) exactly while Dispatched, a finish time exactly while final.
            models.CheckConstraint(
                condition=(models.Q(status=DeliveryStatus.DISPATCHED, claim_token__isnull=False,
                                    lease_expires_at__isnull=False)
                           | (~models.Q(status=DeliveryStatus.DISPATCHED)
                              & models.Q(claim_token__isnull=True, lease_expires_at__isnull=True))),
                name="delivery_claimed_while_dispatched",
                violation_error_message="A delivery has a claim token and a lease while Dispatched, and only then.",
            ),
            models.CheckConstraint(
                condition=(models.Q(status__in=TERMINAL_STATUSES, finished_at__isnull=False)
                           | (~models.Q(status__in=TERMINAL_STATUSES) & models.Q(finished_at__isnull=True))),
                name="delivery_finished_when_final",
                violation_error_message=("A delivery has a finish time while Success, Failed, Daily limit reached "
                                         "or Cancelled, and only then."),
            ),
        ]
        indexes = [
            models.Index(fields=["status", "due_at"], name="delivery_due",
                         condition=models.Q(status__in=["queued", "retry", "throttled"])),
            # Fair claims: the organizations with due work, found by a skip scan (delivery/claims.py).
            models.Index(fields=["organization", "due_at"], name="delivery_due_organization",
                         condition=models.Q(status__in=["queued", "retry", "throttled"])),
            models.Index(fields=["lease_expires_at"], name="delivery_lease",
                         condition=models.Q(status="dispatched")),
            models.Index(fields=["webhook", "-id"], name="delivery_webhook_recent"),
            models.Index(fields=["ordering_key", "id"], name="delivery_ordering",
                         condition=~models.Q(ordering_key="")),
            models.Index(fields=["endpoint"], name="delivery_held", condition=models.Q(status="held")),
        ]

    def __str__(self) -> str:
        return f"{self.webhook_name} → {self.record_ref} ({self.get_status_display()})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        """A new delivery is saved Queued or Cancelled only, as DeliveryQuerySet.create makes it."""
        if self._state.adding:
            _initial_check(self.status)
        super().save(*args, **kwargs)

    @property
    def is_subscription(self) -> bool:
        return self.source == DeliverySource.SUBSCRIPTION

    @property
    def sender(self) -> Webhook | Channel | None:
        """The webhook or, for an event subscription, the channel that sends it; None once that is deleted
        (webhook_name keeps its name). The constraint delivery_one_sender_kind keeps the other one empty."""
        return self.channel if self.is_subscription else self.webhook

    @property
    def sender_key(self) -> str:
        """The sender as one string (failure digests group by it), stable after the sender is deleted."""
        return f"channel:{self.channel_id}" if self.is_subscription else f"webhook:{self.webhook_id}"

    @property
    def message_id(self) -> str:
        return f"msg_{self.public_id.hex}"

    @property
    def cycle_attempts(self) -> int:
        """Attempts since the delivery was enqueued or last resent: what the retry policy counts."""
        return self.attempt_count - self.cycle_start

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


class Attempt(models.Model):
    """One try of a delivery: what came back, or which error stopped it."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempts",
                                 help_text="The delivery this was one try of.")
    number = models.PositiveSmallIntegerField("attempt",
                                              help_text="1 for the first try, then one more per retry or resend.")
    started_at = models.DateTimeField("time", help_text="When the request was sent.")
    duration_ms = models.PositiveIntegerField("duration (ms)", default=0,
                                              help_text=("From sending the request to the end of the answer (or the "
                                                         "error)."))
    status_code = models.PositiveSmallIntegerField("HTTP status", null=True, blank=True,
                                                   help_text="The receiver's HTTP status; empty when no answer came.")
    error_class = models.CharField("error", max_length=40, blank=True,
                                   help_text=("Why it failed, e.g. timeout, connection_error, blocked_address, "
                                              "http_5xx."))
    error_message = models.CharField("error detail", max_length=500, blank=True,
                                     help_text="The error in words, secrets masked.")
    response_headers = models.JSONField("response headers", default=dict, blank=True,
                                        help_text="The answer's headers, secrets masked.")
    response_body = models.TextField("response body (excerpt)", blank=True,
                                     help_text="The start of the answer's body, secrets masked.")
    response_truncated = models.BooleanField("response truncated", default=False,
                                             help_text="The body was longer than what is kept here.")
    captured = models.JSONField(
        "captured values", default=dict, blank=True,
        help_text="Per record field: the expression, its matches and what was written; or why capture failed.",
    )
    outcome = models.CharField("outcome", max_length=20, choices=DeliveryStatus.choices,
                               help_text="The delivery's status after this attempt.")
    cleaned = models.CharField(
        "cleaned or cut", max_length=300, blank=True,
        help_text="What had to be cleaned or cut so this attempt could be stored (NUL bytes, text that is not "
                  "valid Unicode, oversized response headers).")

    class Meta:
        verbose_name = "attempt"
        ordering = ["delivery", "number"]
        constraints = [models.UniqueConstraint(fields=["delivery", "number"], name="attempt_unique_number")]

    def __str__(self) -> str:
        return f"Attempt {self.number} (delivery #{self.delivery_id})"

    @property
    def meaning(self) -> str:
        """What the error class means to an admin (seed 003's error table)."""
        return errors.meaning(self.error_class)


class FailureDigest(models.Model):
    """One hourly e-mail listing a webhook's (or a channel's) failed deliveries; the row makes it once only."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    sender = models.CharField("webhook or channel", max_length=40,
                              help_text="webhook:<id> or channel:<id>, whose failures the e-mail lists.")
    hour = models.DateTimeField("hour (UTC)", help_text="The failures that ended in this hour.")
    failures = models.PositiveIntegerField("failures listed", default=0)
    sent_at = models.DateTimeField("sent", auto_now_add=True)

    class Meta:
        verbose_name = "failure digest"
        ordering = ["-hour"]
        constraints = [models.UniqueConstraint(fields=["sender", "hour"], name="failure_digest_once")]

    def __str__(self) -> str:
        return f"{self.sender} {self.hour:%Y-%m-%d %H}:00"
