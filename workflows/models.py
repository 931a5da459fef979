"""Workflow rules: when a record event matches, run webhook actions now (instant) or later (time-based)."""
from django.db import models

from crm.models import Field, Module, Organization, Record
from dispatcher.models import Delivery, Webhook


class Trigger(models.TextChoices):
    CREATE = "create", "Record created"
    EDIT = "edit", "Record edited"
    CREATE_OR_EDIT = "create_or_edit", "Record created or edited"
    DELETE = "delete", "Record deleted"
    FIELD_UPDATE = "field_update", "A field is updated"
    DATE = "date", "Date/time of a field"


class EditMode(models.TextChoices):
    EVERY = "every", "Every time the criteria are met"
    FIRST_MATCH = "first_match", "Only the first time the criteria become true"


class WorkflowRule(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="workflow_rules",
                                     help_text="The organization whose records it watches.")
    module = models.ForeignKey(Module, on_delete=models.PROTECT, related_name="workflow_rules",
                               help_text="Records of this module fire the rule.")
    name = models.CharField("name", max_length=100,
                            help_text="Shown in the delivery log as the trigger of what it sends.")
    description = models.CharField("description", max_length=200, blank=True,
                                   help_text="For admins: what the rule is for.")
    is_active = models.BooleanField("active", default=True,
                                    help_text=("Inactive rules fire nothing; their scheduled actions are cancelled "
                                               "when due."))
    execution_order = models.PositiveIntegerField("order of execution", default=1,
                                                  help_text="Rules of a module run in this order (lowest first).")
    trigger = models.CharField("when", max_length=20, choices=Trigger.choices, default=Trigger.CREATE,
                               help_text=("When it fires: on create, edit, create or edit, delete, a field update, or "
                                          "a date."))
    edit_mode = models.CharField(
        "on edit", max_length=20, choices=EditMode.choices, default=EditMode.EVERY,
        help_text="For edits: fire on every matching edit, or only when the criteria change from unmet to met.",
    )
    trigger_field = models.ForeignKey(
        Field, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name="field",
        help_text="For 'A field is updated': the field; for 'Date/time of a field': the date or date/time field.",
    )
    trigger_value = models.CharField(
        "changed to", max_length=200, blank=True,
        help_text="For 'A field is updated': fire only when it changes to this value (e.g. Closed Won).",
    )
    date_offset_days = models.IntegerField(
        "days after the date", default=0, help_text="Negative for days before (e.g. -2: two days before).",
    )
    date_time = models.TimeField("at (local time)", null=True, blank=True,
                                 help_text="For date fields: the time of day, in the organization's time zone.")
    date_yearly = models.BooleanField("every year", default=False, help_text="For birthdays and renewals.")
    match_all_records = models.BooleanField("all records", default=False,
                                            help_text="Fire for every record, ignoring the conditions.")
    criteria_pattern = models.CharField(
        "criteria pattern", max_length=200, blank=True,
        help_text="How the numbered conditions combine, e.g. (1 and 2) or 3. Empty: all conditions must hold.",
    )
    created_at = models.DateTimeField("created", auto_now_add=True, help_text="When the rule was made.")
    modified_at = models.DateTimeField("modified", auto_now=True,
                                       help_text="Changed on every save; workers compile the rule again then.")

    class Meta:
        verbose_name = "workflow rule"
        ordering = ["module", "execution_order", "id"]
        constraints = [models.UniqueConstraint(fields=["organization", "name"], name="rule_unique_name_per_org")]
        indexes = [models.Index(fields=["module", "is_active"], name="rule_module_active")]

    def __str__(self) -> str:
        return self.name


class Operator(models.TextChoices):
    IS = "is", "is"
    ISNT = "isnt", "isn't"
    CONTAINS = "contains", "contains"
    STARTS_WITH = "starts_with", "starts with"
    EMPTY = "empty", "is empty"
    NOT_EMPTY = "not_empty", "is not empty"
    LT = "lt", "<"
    LTE = "lte", "<="
    GT = "gt", ">"
    GTE = "gte", ">="
    BETWEEN = "between", "between"
    BEFORE = "before", "is before"
    AFTER = "after", "is after"
    TODAY = "today", "is today"
    CHANGED = "changed", "changed"
    CHANGED_TO = "changed_to", "changed to"


class Condition(models.Model):
    rule = models.ForeignKey(WorkflowRule, on_delete=models.CASCADE, related_name="conditions",
                             help_text="The rule this condition belongs to.")
    number = models.PositiveSmallIntegerField("no.", help_text="Used in the criteria pattern.")
    lookup = models.ForeignKey(
        Field, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name="through lookup",
        help_text="To test a field of a looked-up record (a Deal's Account): the lookup field of the rule's module.",
    )
    field = models.ForeignKey(Field, on_delete=models.PROTECT, related_name="+", verbose_name="field",
                              help_text="The field tested: of the rule's module, or of the looked-up record.")
    operator = models.CharField("operator", max_length=20, choices=Operator.choices, default=Operator.IS,
                                help_text="How the field is compared with the value.")
    value = models.CharField("value", max_length=200, blank=True,
                             help_text="What the field is compared with; a date as YYYY-MM-DD.")
    value_to = models.CharField("and", max_length=200, blank=True, help_text="Upper bound for 'between'.")

    class Meta:
        verbose_name = "condition"
        ordering = ["rule", "number"]
        constraints = [models.UniqueConstraint(fields=["rule", "number"], name="condition_unique_number")]

    def __str__(self) -> str:
        return f"{self.number}. {self.field.label} {self.get_operator_display()} {self.value}".strip()


class ActionKind(models.TextChoices):
    INSTANT = "instant", "Instant"
    TIME_BASED = "time_based", "Time-based"


class DelayUnit(models.TextChoices):
    MINUTES = "minutes", "minutes"
    HOURS = "hours", "hours"
    DAYS = "days", "days"


class Action(models.Model):
    rule = models.ForeignKey(WorkflowRule, on_delete=models.CASCADE, related_name="actions",
                             help_text="The rule that runs this action.")
    webhook = models.ForeignKey(Webhook, on_delete=models.PROTECT, related_name="workflow_actions",
                                help_text="The webhook this action sends.")
    kind = models.CharField("kind", max_length=20, choices=ActionKind.choices, default=ActionKind.INSTANT,
                            help_text=("Instant (when the rule fires) or time-based (later: after a delay or relative "
                                       "to a date field)."))
    delay_amount = models.PositiveIntegerField("after", default=0,
                                               help_text="Time-based: how long after the rule fires.")
    delay_unit = models.CharField("unit", max_length=10, choices=DelayUnit.choices, default=DelayUnit.HOURS,
                                  help_text="Minutes, hours or days.")
    relative_field = models.ForeignKey(
        Field, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name="or relative to",
        help_text="Time-based: a date or date/time field of the record; the offset and time below apply to it.",
    )
    relative_offset_days = models.IntegerField("days after that date", default=0,
                                               help_text="Days before (negative) or after (positive) the date field.")
    relative_time = models.TimeField("at (local time)", null=True, blank=True,
                                     help_text=("The time of day, in the organization's time zone, for an action "
                                                "relative to a date."))
    position = models.PositiveIntegerField("position", default=0, help_text="Order of the rule's actions.")

    class Meta:
        verbose_name = "webhook action"
        ordering = ["rule", "position", "id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.webhook}"


class RunStatus(models.TextChoices):
    SCHEDULED = "scheduled", "Scheduled"
    RUNNING = "running", "Running"
    ENQUEUED = "enqueued", "Delivery queued"
    CANCELLED = "cancelled", "Cancelled"
    SKIPPED = "skipped", "Skipped"


class ActionRun(models.Model):
    """One firing of a rule's action for a record (or, with no action, a date rule due to fire)."""

    rule = models.ForeignKey(WorkflowRule, on_delete=models.CASCADE, related_name="runs",
                             help_text="The rule that fired.")
    # SET_NULL: an action removed from its rule keeps its firing history (actions_remove cancels what was due).
    action = models.ForeignKey(Action, on_delete=models.SET_NULL, null=True, blank=True, related_name="runs",
                               help_text="The time-based action waiting; empty for a date rule's next occurrence.")
    record = models.ForeignKey(Record, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
                               help_text="The record it fired for; empty once deleted (record_ref keeps its name).")
    record_ref = models.CharField("record", max_length=150, help_text="Module and id, kept if the record is deleted.")
    event = models.CharField("event", max_length=20, help_text="What fired the rule: create, edit, delete or date.")
    due_at = models.DateTimeField("due", null=True, blank=True, help_text="When the action runs.")
    status = models.CharField("status", max_length=20, choices=RunStatus.choices, default=RunStatus.SCHEDULED,
                              help_text=("Scheduled, running, delivery queued (its delivery is in the log), cancelled "
                                         "or skipped."))
    reason = models.CharField("reason", max_length=300, blank=True, help_text="Why it was cancelled.")
    delivery = models.ForeignKey(Delivery, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
                                 help_text="The delivery it made, in the log.")
    created_at = models.DateTimeField("fired", auto_now_add=True, help_text="When the rule fired.")

    class Meta:
        verbose_name = "rule run"
        ordering = ["-id"]
        indexes = [models.Index(fields=["status", "due_at"], name="run_due",
                                condition=models.Q(status="scheduled"))]

    def __str__(self) -> str:
        return f"{self.rule} on {self.record_ref}: {self.get_status_display()}"


class ImportStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class ConfigImportJob(models.Model):
    """A configuration file imported by a worker rather than within the web request that sent it (files too
    large to import while a client waits): the REST API answers 202 with it, and GET shows how it went."""

    public_id = models.UUIDField("job id", unique=True, editable=False,
                                 help_text="How the REST API names the job (/config/imports/<id>/).")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+",
                                     help_text="The organization of the API key that sent the file; the only one "
                                               "whose webhooks and rules it may change.")
    status = models.CharField("status", max_length=10, choices=ImportStatus.choices, default=ImportStatus.PENDING,
                              help_text="Pending (queued), running, done, or failed (nothing was imported).")
    dry_run = models.BooleanField("dry run", default=False,
                                  help_text="Report what the file would change, and change nothing.")
    file = models.TextField("file (encrypted)", blank=True,
                            help_text="The file as sent, encrypted (it may hold secrets); emptied when the job ends.")
    entries = models.PositiveIntegerField("entries", default=0, help_text="Webhooks and workflow rules in the file.")
    report = models.JSONField("report", null=True, blank=True,
                              help_text="What the import did (or would do), as the synchronous answer reports it.")
    problems = models.JSONField("problems", default=list, blank=True,
                                help_text="Why nothing was imported, one line per problem.")
    created_at = models.DateTimeField("created", auto_now_add=True, help_text="When the file was received.")
    started_at = models.DateTimeField("started", null=True, blank=True, help_text="When a worker began it.")
    finished_at = models.DateTimeField("finished", null=True, blank=True, help_text="When it ended.")

    class Meta:
        verbose_name = "configuration import"
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"Import {self.public_id} ({self.status})"
