"""The modules and fields every new organization starts with (labels as in Zoho CRM)."""
from dataclasses import dataclass

from crm.models import FieldType as T


@dataclass(frozen=True)
class FieldSpec:
    label: str
    api_name: str
    field_type: str = T.TEXT
    lookup: str | None = None
    picklist: tuple[str, ...] = ()
    required: bool = False


@dataclass(frozen=True)
class ModuleSpec:
    api_name: str
    singular: str
    name_field: str
    fields: tuple[FieldSpec, ...]
    aliases: str = ""
    supports_webhooks: bool = True


LEAD_STATUS = ("Not Contacted", "Attempted to Contact", "Contacted", "Qualified", "Lost Lead")
STAGES = (
    "Qualification", "Needs Analysis", "Value Proposition", "Proposal/Price Quote",
    "Negotiation/Review", "Closed Won", "Closed Lost",
)
DEAL_TYPES = ("New Business", "Existing Business")

STANDARD_MODULES: tuple[ModuleSpec, ...] = (
    ModuleSpec("Accounts", "Account", "Account_Name", aliases="Account", fields=(
        FieldSpec("Account Name", "Account_Name", required=True),
        FieldSpec("Phone", "Phone", T.PHONE),
        FieldSpec("Website", "Website", T.URL),
        FieldSpec("Industry", "Industry", T.PICKLIST, picklist=("Technology", "Finance", "Retail", "Manufacturing")),
        FieldSpec("Annual Revenue", "Annual_Revenue", T.CURRENCY),
        FieldSpec("Employees", "Employees", T.NUMBER),
        FieldSpec("Billing City", "Billing_City"),
        FieldSpec("Billing Country", "Billing_Country"),
    )),
    ModuleSpec("Contacts", "Contact", "Last_Name", aliases="Contact", fields=(
        FieldSpec("First Name", "First_Name"),
        FieldSpec("Last Name", "Last_Name", required=True),
        FieldSpec("Email", "Email", T.EMAIL),
        FieldSpec("Mobile", "Mobile", T.PHONE),
        FieldSpec("Account Name", "Account_Name", T.LOOKUP, lookup="Accounts"),
        FieldSpec("Date of Birth", "Date_of_Birth", T.DATE),
        FieldSpec("Email Opt Out", "Email_Opt_Out", T.BOOLEAN),
    )),
    ModuleSpec("Leads", "Lead", "Last_Name", aliases="Lead", fields=(
        FieldSpec("First Name", "First_Name"),
        FieldSpec("Last Name", "Last_Name", required=True),
        FieldSpec("Company", "Company"),
        FieldSpec("Email", "Email", T.EMAIL),
        FieldSpec("Mobile", "Mobile", T.PHONE),
        FieldSpec("Lead Status", "Lead_Status", T.PICKLIST, picklist=LEAD_STATUS),
        FieldSpec("Lead Source", "Lead_Source", T.PICKLIST, picklist=("Web Form", "Cold Call", "Partner", "Trade Show")),
        FieldSpec("Description", "Description", T.TEXTAREA),
    )),
    ModuleSpec("Deals", "Deal", "Deal_Name", aliases="Potentials, Potential", fields=(
        FieldSpec("Deal Name", "Deal_Name", required=True),
        FieldSpec("Amount", "Amount", T.CURRENCY),
        FieldSpec("Closing Date", "Closing_Date", T.DATE),
        FieldSpec("Stage", "Stage", T.PICKLIST, picklist=STAGES),
        FieldSpec("Type", "Type", T.PICKLIST, picklist=DEAL_TYPES),
        FieldSpec("Probability (%)", "Probability", T.NUMBER),
        FieldSpec("Account Name", "Account_Name", T.LOOKUP, lookup="Accounts"),
        FieldSpec("Contact Name", "Contact_Name", T.LOOKUP, lookup="Contacts"),
        FieldSpec("Payment Due Date", "Payment_Due_Date", T.DATE),
    )),
    ModuleSpec("Events", "Event", "Event_Title", fields=(
        FieldSpec("Event Title", "Event_Title", required=True),
        FieldSpec("Start DateTime", "Start_DateTime", T.DATETIME),
        FieldSpec("End DateTime", "End_DateTime", T.DATETIME),
        FieldSpec("Venue", "Venue"),
        FieldSpec("Related Deal", "Related_Deal", T.LOOKUP, lookup="Deals"),
    )),
    ModuleSpec("Tasks", "Task", "Subject", fields=(
        FieldSpec("Subject", "Subject", required=True),
        FieldSpec("Due Date", "Due_Date", T.DATE),
        FieldSpec("Status", "Status", T.PICKLIST, picklist=("Not Started", "In Progress", "Completed")),
        FieldSpec("Priority", "Priority", T.PICKLIST, picklist=("High", "Normal", "Low")),
        FieldSpec("Related Deal", "Related_Deal", T.LOOKUP, lookup="Deals"),
    )),
    ModuleSpec("Calls", "Call", "Subject", aliases="Call logs, Call log", supports_webhooks=False, fields=(
        FieldSpec("Subject", "Subject", required=True),
        FieldSpec("Call Start Time", "Call_Start_Time", T.DATETIME),
        FieldSpec("Call Duration (minutes)", "Call_Duration", T.NUMBER),
    )),
    ModuleSpec("Notes", "Note", "Note_Title", aliases="Note", supports_webhooks=False, fields=(
        FieldSpec("Note Title", "Note_Title"),
        FieldSpec("Note Content", "Note_Content", T.TEXTAREA),
    )),
)
