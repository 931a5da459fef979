"""The custom contract refuses what it should, so a green lint-imports means the boundaries hold."""
import grimp

from tests.import_contracts import PublicModulesContract


def graph_with(*imports: tuple[str, str]) -> grimp.ImportGraph:
    graph = grimp.ImportGraph()
    for module in ["engine", "engine.models", "engine.services", "engine.internal", "engine.internal.deep",
                   "rules", "rules.engine_user", "root"]:
        graph.add_module(module)
    for importer, imported in imports:
        graph.add_import(importer=importer, imported=imported, line_number=3, line_contents="import x")
    return graph


def contract() -> PublicModulesContract:
    return PublicModulesContract(name="engine public", session_options={"root_packages": ["engine", "rules", "root"]},
                                 contract_options={"package": "engine", "public": ["engine.models", "engine.services"],
                                                   "exempt_importers": ["root"]})


def test_imports_of_public_modules_from_outside_are_kept():
    graph = graph_with(("rules.engine_user", "engine.services"), ("rules", "engine.models"),
                       ("engine.services", "engine.internal"))
    assert contract().check(graph, verbose=False).kept


def test_an_internal_module_imported_from_another_app_breaks_the_contract():
    graph = graph_with(("rules.engine_user", "engine.internal.deep"))
    check = contract().check(graph, verbose=False)
    assert not check.kept
    assert check.metadata["illegal"] == [("rules.engine_user", "engine.internal.deep", [3])]


def test_the_composition_root_may_import_anything():
    assert contract().check(graph_with(("root", "engine.internal")), verbose=False).kept
