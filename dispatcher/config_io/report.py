"""What an import tells: the error that refuses a file (ConfigError), what was done to each entry
(ImportReport, outcome_of), and problem lines that name the entry they are about."""
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError

from crm.models import Organization


class ConfigError(Exception):
    """The file cannot be imported; ``problems`` lists every reason, each naming the webhook."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


CREATED, CHANGED, UNCHANGED = "created", "changed", "unchanged"


@dataclass
class ImportReport:
    """Names of one section's entries by what the import did to them."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    def add(self, outcome: str, name: str) -> None:
        {CREATED: self.created, CHANGED: self.updated, UNCHANGED: self.unchanged}[outcome].append(name)


def outcome_of(before: Any, after: Any) -> str:
    """Compare an entry's export before and after its import."""
    if before is None:
        return CREATED
    return UNCHANGED if before == after else CHANGED


def problems_of(where: str, error: ValidationError) -> list[str]:
    """One line per message, each saying which entry and which key it is about (never none at all)."""
    details = error.message_dict if hasattr(error, "error_dict") else {"": error.messages}
    lines = [f"{where}: {key + ': ' if key and key != '__all__' else ''}{message}"
             for key, messages in details.items() for message in messages]
    return lines or [f"{where}: not valid."]


def entry_where(section: str, index: int, entry: Any, key: str = "name") -> str:
    """How a problem names its entry: section, index and name (``webhooks[2] “Invoice”``)."""
    return f"{section}[{index}]" + (f" “{entry.get(key)}”" if isinstance(entry, dict) else "")


def scope_problem(section: str, index: int, entry: Any, organization: Organization | None) -> str | None:
    """An entry of another organization than the importer's (the REST API imports for its key's only)."""
    if organization is None or not isinstance(entry, dict) or entry.get("organization") == organization.name:
        return None
    return (f"{entry_where(section, index, entry)}: organization: this key belongs to {organization.name}; entries "
            "of other organizations are not imported.")
