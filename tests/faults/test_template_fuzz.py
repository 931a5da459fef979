"""Template fuzzing: arbitrary record values and merge-field text, in admin-written bodies of every content type,
never crash rendering, never evaluate anything, and always give a valid document (see also
tests/dispatcher/test_rendering_properties.py for the parameter encodings)."""
import json
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from crm import services as crm_services
from dispatcher.models import ContentType
from dispatcher.rendering.encoding import XML_ILLEGAL_RE
from dispatcher.rendering.request import webhook_render_request
from dispatcher.rendering.template import UNSUPPORTED, template_compile
from dispatcher.rendering.xml import safe_parser
from tests.factories import webhook_create

CODE = ["{{7*7}}", "${7*7}", "{% for x in range(3) %}x{% endfor %}", "__import__('os').system('id')",
        "<!DOCTYPE a [<!ENTITY x SYSTEM 'file:///etc/passwd'>]>&x;", "]]><![CDATA[", "${Leads.Last Name}",
        "\\u0022", "\"}, \"injected\": {\"", "</last><admin>true</admin><last>", "%(name)s {0} $name"]
VALUE = st.one_of(st.sampled_from(CODE), st.text(alphabet=st.characters(exclude_categories=("Cs",),
                                                                         exclude_characters="\x00"),
                                                 min_size=1, max_size=120))
SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

JSON_BODY = '{"last": "${Leads.Last Name}", "bare": ${Leads.Last Name}, "both": "x ${Leads.Last Name} y"}'
XML_BODY = '<lead last="${Leads.Last Name}"><last>${Leads.Last Name}</last><n>${Leads.Lead Source}</n></lead>'


@SETTINGS
@given(value=VALUE)
def test_any_value_in_a_user_defined_json_body_stays_data(modules, owner, value):
    lead = crm_services.record_create(module=modules["Leads"], owner=owner, values={"Last_Name": value})
    hook = webhook_create(module=modules["Leads"], name="Fuzz JSON", content_type=ContentType.JSON,
                          method="POST", body=JSON_BODY)
    try:
        document = json.loads(webhook_render_request(webhook=hook, record=lead, message_id="m").body)
        assert document == {"last": value, "bare": value, "both": f"x {value} y"}  # literally, nothing evaluated
    finally:
        hook.delete()
        lead.delete()


@SETTINGS
@given(value=VALUE)
def test_any_value_in_a_user_defined_xml_body_stays_data(modules, owner, value):
    lead = crm_services.record_create(module=modules["Leads"], owner=owner, values={"Last_Name": value})
    hook = webhook_create(module=modules["Leads"], name="Fuzz XML", content_type=ContentType.XML,
                          method="POST", body=XML_BODY)
    try:
        root = etree.fromstring(webhook_render_request(webhook=hook, record=lead, message_id="m").body,
                                parser=safe_parser())
        legal = XML_ILLEGAL_RE.sub("", value)
        assert (root.tag, root.get("last"), root.findtext("last") or "") == ("lead", legal, legal)
        assert [child.tag for child in root] == ["last", "n"]  # no element smuggled in
    finally:
        hook.delete()
        lead.delete()


@SETTINGS
@given(label=st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=60),
       module=st.sampled_from(["Leads", "Deals", "Nowhere", "User", "Organization"]))
def test_any_merge_field_text_renders_or_says_unsupported(modules, owner, label, module):
    lead = crm_services.record_create(module=modules["Leads"], owner=owner, values={"Last_Name": "Fuzz"})
    text = f"${{{module}.{label}}}"
    hook = webhook_create(module=modules["Leads"], name="Fuzz field", entity=[("v", "${Leads.Last Name}")])
    try:  # whatever happens: hypothesis replays a failing example, which must find a clean database
        hook.entity_parameters.update(value=text)  # past the admin's checks, as an old or imported one would be
        value = json.loads(webhook_render_request(webhook=hook, record=lead, message_id="m").body)["v"]
        assert isinstance(value, str)
        template = template_compile(text)
        if template.single_field is not None:
            assert value == UNSUPPORTED or module in ("Leads", "User", "Organization")
        else:  # text around merge fields (`${Nowhere.X}…}`) stays literal; only the fields are replaced
            shape = "".join(re.escape(part) if isinstance(part, str) else ".*?" for part in template.parts)
            assert re.fullmatch(shape, value, re.DOTALL), (text, value)
    finally:
        hook.delete()
        lead.delete()
