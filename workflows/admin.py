"""Workflow rule admin: conditions and actions inline, the whole rule checked by workflows.services."""
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils.html import format_html

from config.admin_base import CrmAdminMixin
from config.formsets import SiblingAwareFormSet, SiblingFormSetsMixin, formset_rows
from workflows import services
from workflows.models import Action, ActionRun, Condition, WorkflowRule


CONDITION_KEYS = ("number", "lookup", "field", "operator", "value", "value_to")
ACTION_KEYS = ("webhook", "kind", "delay_amount", "delay_unit", "relative_field", "relative_offset_days",
               "relative_time")


class ConditionInline(CrmAdminMixin, admin.TabularInline):
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


class ActionInline(CrmAdminMixin, admin.TabularInline):
    model = Action
    formset = ActionFormSet
    fields = ["webhook", "kind", "delay_amount", "delay_unit", "relative_field", "relative_offset_days",
              "relative_time", "position"]
    extra = 1
    autocomplete_fields = ["webhook", "relative_field"]


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
class WorkflowRuleAdmin(CrmAdminMixin, SiblingFormSetsMixin, admin.ModelAdmin):
    list_display = ["name", "organization", "module", "trigger", "is_active", "execution_order", "log_link"]
    list_filter = ["is_active", "trigger", "module__api_name", "organization"]
    search_fields = ["name", "description"]
    list_select_related = ["organization", "module"]
    inlines = [ConditionInline, ActionInline, RunInline]
    actions = ["activate", "deactivate", "run_on_existing_dry_run", "run_on_existing"]
    fieldsets = [
        (None, {"fields": ["organization", "module", "name", "description", "is_active", "execution_order"]}),
        ("When", {"fields": ["trigger", "edit_mode", "trigger_field", "trigger_value", "date_offset_days",
                             "date_time", "date_yearly"]}),
        ("Criteria", {"fields": ["match_all_records", "criteria_pattern"]}),
    ]

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
        url = reverse("admin:dispatcher_delivery_changelist") + f"?trigger__startswith=Rule “{obj.name}”"
        return format_html('<a href="{}">View webhook log</a>', url)

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
