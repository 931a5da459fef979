"""Property tests: any value, in any content type, gives a document that parses back to that value."""
import json
from decimal import Decimal
from urllib.parse import parse_qsl

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from crm import services as crm_services
from dispatcher.models import ContentType, Webhook
from dispatcher.rendering.encoding import XML_ILLEGAL_RE, as_json_value, in_json_string, xml_text
from dispatcher.rendering.request import webhook_render_request
from dispatcher.rendering.template import MERGE_FIELD_RE, Slot, template_compile
from dispatcher.rendering.xml import safe_parser
from tests.factories import webhook_create

TEXT = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=200)


@given(TEXT)
def test_any_text_inside_a_json_string_parses_back(value):
    assert json.loads('{"a": "' + in_json_string(value) + '"}') == {"a": value}


@given(st.one_of(TEXT, st.none(), st.booleans(), st.integers(),
                 st.decimals(allow_nan=False, allow_infinity=False, places=2).map(Decimal),
                 st.lists(TEXT, max_size=5)))
def test_any_value_outside_quotes_is_one_json_value(value):
    parsed = json.loads(as_json_value(value), parse_float=Decimal)
    assert parsed == value


@given(TEXT)
def test_any_text_in_xml_text_and_attributes_is_well_formed(value):
    root = etree.fromstring(f'<a b="{xml_text(value)}">{xml_text(value)}</a>'.encode(), parser=safe_parser())
    legal = XML_ILLEGAL_RE.sub("", value)
    assert (root.text or "") == legal  # line breaks survive exactly, \r included
    assert root.get("b") == legal


@given(st.text(max_size=300))
def test_any_template_text_compiles_and_keeps_its_literal_text(text):
    template = template_compile(text)
    rebuilt = "".join(part if isinstance(part, str) else str(part.field) for part in template.parts)
    assert MERGE_FIELD_RE.sub(lambda m: f"${{{m.group(1).strip()}.{m.group(2).strip()}}}", text) == rebuilt
    assert all(isinstance(part, (str, Slot)) for part in template.parts)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.text(alphabet=st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), min_size=1, max_size=255))
def test_any_record_value_renders_valid_documents_in_every_content_type(modules, owner, name):
    lead = crm_services.record_create(module=modules["Leads"], owner=owner, values={"Last_Name": name})
    entity = [("n", "${Leads.Last Name}"), ("label", "<${Leads.Last Name}> & \"${User.Last Name}\"")]
    try:  # whatever happens: hypothesis replays a failing example, which must find a clean database
        for content_type in ContentType:
            hook = webhook_create(module=modules["Leads"], name=f"h {content_type}", content_type=content_type,
                                  entity=entity)
            body = webhook_render_request(webhook=hook, record=lead, message_id="m").body
            label = f'<{name}> & "Watson"'
            if content_type == ContentType.JSON:
                assert json.loads(body) == {"n": name, "label": label}
            elif content_type == ContentType.JSONARRAY:
                assert json.loads(body) == [{"n": name, "label": label}]
            elif content_type == ContentType.FORM:
                assert parse_qsl(body.decode(), keep_blank_values=True) == [("n", name), ("label", label)]
            else:
                root = etree.fromstring(body, parser=safe_parser())
                assert (root.findtext("n") or "") == XML_ILLEGAL_RE.sub("", name)
    finally:
        Webhook.objects.filter(name__startswith="h ").delete()
        lead.delete()
