"""The delivery engine page names every module of dispatcher/delivery/ and no module that is gone, so a module
added to the engine, or one renamed, comes with its line in docs/internals/delivery-engine.md."""
import re

from tests.docs.pages import ROOT, page, section


def test_the_module_table_lists_every_module_of_the_engine():
    table = section(page("internals/delivery-engine.md"), "Delivery engine")
    listed = re.findall(r"^\| `([a-z_]+\.py)` \|", table, re.MULTILINE)
    modules = sorted(path.name for path in (ROOT / "dispatcher" / "delivery").glob("*.py") if path.name != "__init__.py")
    assert sorted(set(listed)) == sorted(listed), "a module listed twice"
    assert sorted(listed) == modules, (f"missing from the page: {sorted(set(modules) - set(listed))}; "
                                       f"gone from dispatcher/delivery/: {sorted(set(listed) - set(modules))}")
