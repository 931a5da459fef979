"""The webhook engine as other apps may use it: with models and selectors, the only door into dispatcher.

The names live in the modules that own them (webhooks, delivery, quotas, config_io, demo); this module
gathers what workflows and the tests call, so an app's dependencies on the engine are one list, and
.importlinter fails the build when anything outside dispatcher reaches past it. Modules inside dispatcher
import the owning modules directly (importing this one from them would be circular).
"""
from dispatcher.config_io import (
    UNCHANGED, ConfigError, ImportReport, ImportScope, config_check_header, config_export, entries_import,
    outcome_of, problems_of, retry_policies_import, scope_problem, webhooks_import,
)
from dispatcher.config_shapes import Shape, Whole, shape_parse
from dispatcher.crypto import decrypt as secret_decrypt, encrypt as secret_encrypt
from dispatcher.delivery import Enqueue, deliveries_enqueue, delivery_enqueue, delivery_log_cancelled
from dispatcher.demo import admin_password_file, demo_load
from dispatcher.quotas import quota_remaining
from dispatcher.webhooks import (
    WEBHOOK_SECRETS, Header, Parameter, webhook_check_definition, webhook_check_headers, webhook_check_parameters,
    webhook_preview, webhook_retarget_problem, webhook_save, webhook_secret_retarget_problem, webhook_send_test,
    webhook_unsupported_merge_fields, webhook_unused_secrets,
)

__all__ = [
    "UNCHANGED", "ConfigError", "Enqueue", "Header", "ImportReport", "ImportScope", "Parameter", "Shape", "WEBHOOK_SECRETS",
    "admin_password_file", "config_check_header", "config_export", "deliveries_enqueue", "delivery_enqueue",
    "delivery_log_cancelled", "demo_load", "entries_import", "outcome_of", "problems_of", "quota_remaining",
    "retry_policies_import", "scope_problem", "secret_decrypt", "secret_encrypt", "shape_parse", "Whole",
    "webhook_check_definition", "webhook_check_headers", "webhook_check_parameters", "webhook_preview",
    "webhook_retarget_problem", "webhook_save", "webhook_secret_retarget_problem", "webhook_send_test", "webhook_unsupported_merge_fields",
    "webhook_unused_secrets", "webhooks_import",
]
