"""Workflow rule admin: conditions and actions inline, the whole rule checked by workflows.services."""
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils.html import format_html

from config.admin_base import CrmAdminMixin
from config.formsets import SiblingAwareFormSet, SiblingFormSetsMixin, formset_rows
from workflows import services
from workflows.models import Action, ActionKind, ActionRun, Condition, WorkflowRule


CONDITION_KEYS = ("number", "lookup", "field", "operator", "value", "value_to")
ACTION_KEYS = ("webhook", "kind", "delay_amount", "delay_unit", "relative_field", "relative_offset_days",
               "relative_time")
# Field pickers offer only the fields that fit where they are (crm/static/crm/field_pickers.js): field name ->
# (the kind of field, the row's "through lookup" input that decides the module, if any).
FIELD_PICKERS = {"trigger_field": ("any", ""), "lookup": ("lookup", ""), "field": ("any", "lookup"),
                 "relative_field": ("date", "")}
FIELD_PICKERS_JS = ["admin/js/jquery.init.js", "admin/js/autocomplete.js", "crm/field_pickers.js"]


class FieldPickersMixin(CrmAdminMixin):
    """Marks the rule's field autocompletes with what fits there: fields of the rule's module (or of the
    module its condition looks up), of the kind the place needs."""

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        formfield = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if formfield is not None and db_field.name in FIELD_PICKERS:
            kind, through_lookup = FIELD_PICKERS[db_field.name]
            formfield.widget.attrs.update({"data-field-picker": kind, "data-through-lookup": through_lookup})
        return formfield


class ConditionInline(FieldPickersMixin, admin.TabularInline):
    model = Condition
    formset = SiblingAwareFormSet
    fields = ["number", "lookup", "field", "operator", "value", "value_to"]
    extra = 1
    autocomplete_fields = ["field", "lookup"]


class ActionFormSet(SiblingAwareFormSet):
    """The last inline: checks the rule with its conditions and actions together, as saving would."""

    def clean(self) -> None:
        super().clean()
        conditions = self.siblings.get(Condition)
        rule = self.instance
        if any(self.errors) or conditions is None or not conditions.is_valid() or not rule.module_id:
            return
        problems = services.rule_check(
            rule=rule,
            conditions=[Condition(rule=rule, **{k: row[k] for k in CONDITION_KEYS}) for row in conditions.kept_rows()],
            actions=[Action(rule=rule, **{k: row[k] for k in ACTION_KEYS}) for row in self.kept_rows()],
        )
        labels = {"conditions": "", "actions": "", "criteria_pattern": "Criteria pattern: ",
                  "trigger_field": "Field: ", "trigger_value": "Changed to: ", "module": "Module: "}
        if problems:
            raise ValidationError([labels.get(key, "") + m for key, found in problems.items() for m in found])


def webhook_log_url(rule: WorkflowRule, action: Action | None = None) -> str:
    """The webhook log filtered to what a rule made (the trigger names the rule), or to one of its actions:
    that webhook, and the instant or the time-based firings (seed 004: "View webhook log" beside the action)."""
    trigger = f"Rule “{rule.name}”"
    query: dict[str, object] = {"trigger__startswith": trigger}
    if action is not None:
        query["webhook__id__exact"] = action.webhook_id
        query["trigger__startswith"] = trigger + (", time-based" if action.kind == ActionKind.TIME_BASED else " on ")
    return reverse("admin:dispatcher_delivery_changelist") + "?" + urlencode(query)


class ActionInline(FieldPickersMixin, admin.TabularInline):
    model = Action
    formset = ActionFormSet
    # The log link beside the webhook, where it is seen without scrolling whatever the window's width.
    fields = ["webhook", "log_link", "kind", "delay_amount", "delay_unit", "relative_field", "relative_offset_days",
              "relative_time", "position"]
    readonly_fields = ["log_link"]
    extra = 1
    autocomplete_fields = ["webhook", "relative_field"]

    class Media:
        css = {"all": ["workflows/rule_admin.css"]}  # the actions table fits the page (narrower inputs)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("rule")

    @admin.display(description="webhook log")
    def log_link(self, obj: Action) -> str:
        if obj.pk is None:  # a row not saved yet has no log
            return "-"
        return format_html('<a href="{}">View webhook log</a>', webhook_log_url(obj.rule, obj))


RUN_FIELDS = ("created_at", "record_ref", "event", "action", "status", "due_at", "reason", "delivery_link")


class RunInline(CrmAdminMixin, admin.TabularInline):
    model = ActionRun
    fields = RUN_FIELDS
    readonly_fields = RUN_FIELDS
    extra = 0
    can_delete = False
    max_num = 0
    verbose_name_plural = "recent firings"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("action__webhook", "delivery")

    @admin.display(description="delivery")
    def delivery_link(self, obj: ActionRun) -> str:
        if obj.delivery is None:
            return "-"
        url = reverse("admin:dispatcher_delivery_change", args=[obj.delivery.pk])
        return format_html('<a href="{}">{}</a>', url, obj.delivery.get_status_display())


@admin.register(WorkflowRule)
class WorkflowRuleAdmin(FieldPickersMixin, SiblingFormSetsMixin, admin.ModelAdmin):
    list_display = ["name", "organization", "module", "trigger", "is_active", "execution_order", "log_link"]
    list_filter = ["is_active", "trigger", "module__api_name", "organization"]
    search_fields = ["name", "description"]
    list_select_related = ["organization", "module"]
    inlines = [ConditionInline, ActionInline, RunInline]
    autocomplete_fields = ["trigger_field"]
    actions = ["activate", "deactivate", "run_on_existing_dry_run", "run_on_existing"]
    fieldsets = [
        (None, {"fields": ["organization", "module", "name", "description", "is_active", "execution_order"]}),
        ("When", {"fields": ["trigger", "edit_mode", "trigger_field", "trigger_value", "date_offset_days",
                             "date_time", "date_yearly"]}),
        ("Criteria", {"fields": ["match_all_records", "criteria_pattern"]}),
    ]

    class Media:
        js = FIELD_PICKERS_JS

    def save_model(self, request, obj, form, change) -> None:
        """Nothing yet: the rule is stored with its conditions and actions by rule_save, in save_related."""

    def save_related(self, request, form, formsets, change) -> None:
        """Through rule_save, the service import_config uses: the same checks, and a removed action's
        scheduled runs are cancelled with their reason."""
        rows = formset_rows(formsets)
        saved = services.rule_save(
            rule=form.instance,
            conditions=[Condition(**{k: row[k] for k in CONDITION_KEYS}) for row in rows.get(Condition, [])],
            actions=[Action(**{k: row[k] for k in ACTION_KEYS}) for row in rows.get(Action, [])],
        )
        if saved.actions_removed:
            self.message_user(request, f"Removed {'; '.join(saved.actions_removed)}: {saved.runs_cancelled} "
                              "scheduled run(s) cancelled, each logged with its reason.", messages.WARNING)

    @admin.display(description="webhook log")
    def log_link(self, obj: WorkflowRule) -> str:
        return format_html('<a href="{}">View webhook log</a>', webhook_log_url(obj))

    @admin.action(description="Activate selected rules", permissions=["change"])
    def activate(self, request, queryset) -> None:
        for rule in queryset:
            rule.is_active = True
            rule.save(update_fields=["is_active", "modified_at"])
        self.message_user(request, f"{queryset.count()} rule(s) activated.", messages.SUCCESS)

    @admin.action(description="Deactivate selected rules", permissions=["change"])
    def deactivate(self, request, queryset) -> None:
        for rule in queryset:
            rule.is_active = False
            rule.save(update_fields=["is_active", "modified_at"])
        self.message_user(request, f"{queryset.count()} rule(s) deactivated.", messages.SUCCESS)

    @admin.action(description="Run on existing records: dry run (count only)", permissions=["view"])
    def run_on_existing_dry_run(self, request, queryset) -> None:
        for rule in queryset:
            report = services.rule_run_on_existing(rule=rule, dry_run=True)
            verdict = "fits in" if report.fits_quota else "exceeds"
            self.message_user(
                request, f"“{rule.name}”: {report.matching} record(s) match now; running it would make "
                f"{report.deliveries} instant deliveries, which {verdict} today's remaining quota of "
                f"{report.quota_left}, and schedule {report.scheduled} time-based one(s) for when they fall due.",
                messages.INFO if report.fits_quota else messages.WARNING)

    @admin.action(description="Run on existing records (fires the rule now)", permissions=["change"])
    def run_on_existing(self, request, queryset) -> None:
        for rule in queryset:
            writes = services.rule_capture_fields(rule=rule)
            if writes and not request.user.has_perm("crm.change_record"):
                # Firing it would write record fields through response capture, on behalf of someone who may not.
                self.message_user(request, f"“{rule.name}” was not run: its webhooks write {', '.join(writes)} "
                                  "into the records from the receivers' answers, and you may not change records.",
                                  messages.ERROR)
                continue
            report = services.rule_run_on_existing(rule=rule, dry_run=False)
            self.message_user(request, f"“{rule.name}” fired for {report.matching} record(s): "
                              f"{report.deliveries} deliveries queued, {report.scheduled} time-based one(s) "
                              "scheduled.", messages.SUCCESS)
