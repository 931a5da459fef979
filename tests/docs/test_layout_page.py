"""The Layout page and dispatcher/__init__.py's docstring list every package of dispatcher/, and nothing that is
gone, in the order of .importlinter's dispatcher-layers contract: a package added, renamed or moved in the
order comes with its line on the page and in the docstring, so neither can drift from the code."""
import ast
import configparser
import re

from tests.docs.pages import ROOT, page

DISPATCHER = ROOT / "dispatcher"
NOT_LAYERS = {"migrations"}  # a package of Django's, not one of ours (exhaustive_ignores of the contract)


def packages() -> set[str]:
    """The package directories under dispatcher/."""
    return {path.parent.name for path in DISPATCHER.glob("*/__init__.py")} - NOT_LAYERS


def modules() -> set[str]:
    """Every package and top-level module of dispatcher/ (what the docstring may name)."""
    return packages() | {path.stem for path in DISPATCHER.glob("*.py") if path.stem != "__init__"}


def page_entries() -> list[str]:
    """The names on the Layout page's dispatcher/ lines, in page order: `  ops/  …` and
    `  tasks.py, signals.py, checks.py  …` (two spaces in; deeper lines continue the line above)."""
    tree = page("internals/layout.md").split("```")[1]
    entries = []
    for line in tree.split("\ndispatcher/", 1)[1].split("\n")[1:]:
        if not line.startswith(" "):  # the next top-level directory
            break
        if not line.startswith("   "):
            names = line.strip().split("  ", 1)[0]
            entries += [name.removesuffix("/").removesuffix(".py") for name in re.findall(r"[a-z_]+(?:/|\.py)", names)]
    return entries


def docstring_entries() -> list[str]:
    """The names of the bullet list in dispatcher/__init__.py's docstring, in its order."""
    docstring = ast.get_docstring(ast.parse((DISPATCHER / "__init__.py").read_text(encoding="utf-8"))) or ""
    bullets = [line.split(":", 1)[0] for line in docstring.split("\n") if line.startswith("- ")]
    return [name for bullet in bullets for name in re.findall(r"``([a-z_]+)``", bullet)]


def contract_layers() -> list[str]:
    """The dispatcher-layers contract's layers, top to bottom, without the app config (apps.py)."""
    contracts = configparser.ConfigParser()
    contracts.read(ROOT / ".importlinter", encoding="utf-8")
    layers = contracts["importlinter:contract:dispatcher-layers"]["layers"]
    return [name.strip() for line in layers.split("\n") for name in line.split("|") if name.strip()
            and name.strip() != "apps"]


def test_the_layout_page_lists_every_package_of_dispatcher_and_nothing_gone():
    listed = page_entries()
    assert len(set(listed)) == len(listed), "a name listed twice on the Layout page"
    missing, gone = sorted(packages() - set(listed)), sorted(set(listed) - modules())
    assert not missing and not gone, f"missing from docs/internals/layout.md: {missing}; gone from dispatcher/: {gone}"


def test_the_dispatcher_docstring_lists_every_package_and_nothing_gone():
    listed = docstring_entries()
    missing, gone = sorted(packages() - set(listed)), sorted(set(listed) - modules())
    assert not missing and not gone, f"missing from dispatcher/__init__.py's docstring: {missing}; gone: {gone}"


def test_the_docstring_and_the_page_follow_the_contracts_order():
    order = contract_layers()
    assert docstring_entries() == order, "dispatcher/__init__.py's docstring lists the layers as .importlinter does"
    assert page_entries() == order, "the Layout page lists dispatcher's layers as .importlinter does"


def test_every_package_of_dispatcher_says_what_it_owns():
    silent = sorted(name for name in packages()
                    if not ast.get_docstring(ast.parse((DISPATCHER / name / "__init__.py").read_text(encoding="utf-8"))))
    assert not silent, f"packages of dispatcher/ without a docstring in their __init__.py: {silent}"
