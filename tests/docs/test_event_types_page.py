"""docs/integrate/event-types.md is the event catalogue of the standard modules as the code generates it, and
its curl lines fetch the live catalogue with a key that has only the scope the page names."""
import re

from crm import services as crm_services
from crm.models import ApiScope
from dispatcher.senders.event_types_page import PAGE, event_types_page
from tests.docs.pages import blocks, page, section

REGENERATE = "run python scripts/docs_generate.py"


def test_the_committed_page_is_the_generated_one():
    assert page(PAGE) == event_types_page(), f"docs/{PAGE} is stale: {REGENERATE}"


def test_the_pages_curl_lines_answer_with_a_key_that_has_the_scope_it_names(client, owner):
    live = section(page(PAGE), "The live catalogue")
    assert "`channels` scope" in live
    key = crm_services.api_key_create(user=owner, name="Catalogue", scopes=[ApiScope.CHANNELS.value])[1]
    [commands] = blocks(live, "sh")
    paths = re.findall(r'\$API(/[^"\s]*)"? -H "X-API-Key: \$KEY"', commands)
    assert len(paths) == 3
    for path in paths:
        response = client.get(f"/api/v1{path}", headers={"X-API-Key": key})
        assert response.status_code == 200, (path, response.content)
        assert response.json()["data"], path
