"""The locks say what the `.in` files say: a pin edited in one place only would ship something else. What the
product imports is declared in requirements.in, and it uses aiohttp through its public interface only."""

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
APPS = ("crm", "dispatcher", "workflows", "config")
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==([^\s;\\]+)")


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        match = PIN.match(line.strip())
        if match:
            pins[match[1].lower().replace("_", "-")] = match[2]
    return pins


def _requirements(path: Path) -> list[Requirement]:
    """The requirements a .in file states itself (not its comments, nor its -r/-c lines)."""
    lines = (line.split(" #", 1)[0].strip() for line in path.read_text().splitlines())
    return [Requirement(line) for line in lines if line and not line.startswith(("#", "-"))]


@pytest.mark.parametrize(
    ("source", "lock"),
    [("requirements.in", "requirements.txt"), ("requirements-dev.in", "requirements-dev.txt")],
)
def test_every_direct_requirement_is_locked_at_one_version_it_allows(source, lock):
    wanted, locked = _requirements(ROOT / source), _pins(ROOT / lock)
    assert wanted, f"{source} pins nothing"
    drift = {str(r): locked.get(canonicalize_name(r.name)) for r in wanted
             if not r.specifier.contains(locked.get(canonicalize_name(r.name), "0"), prereleases=True)}
    assert not drift, f"re-run pip-compile (docs/operate/install.md, Dependencies): {drift}"


@pytest.mark.parametrize("source", ["requirements.in", "requirements-dev.in"])
def test_every_direct_requirement_is_exact_or_a_bounded_range(source):
    """`==` or a range with both ends (aiohttp>=3.14.5,<3.15): an open range would lock whatever comes next."""
    loose = [str(r) for r in _requirements(ROOT / source)
             if {s.operator for s in r.specifier} not in ({"=="}, {">=", "<"})]
    assert not loose, f"{source}: pin these exactly or by a bounded range: {loose}"


def _product_modules(root: Path = ROOT, folders: tuple[str, ...] = APPS):
    for folder in folders:
        for path in sorted((root / folder).rglob("*.py")):
            yield path.relative_to(root), ast.parse(path.read_text(encoding="utf-8"))


def _imported_top_level_names(root: Path = ROOT, folders: tuple[str, ...] = APPS) -> dict[str, str]:
    """Every absolute import in the product's code (function-local ones too): top-level name -> a file."""
    names: dict[str, str] = {}
    for path, tree in _product_modules(root, folders):
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found = [node.module]
            else:
                continue
            for name in found:
                names.setdefault(name.split(".")[0], str(path))
    return names


def test_every_package_the_product_imports_is_declared_in_requirements_in():
    """A package that comes in only as another's dependency (yarl with aiohttp, pydantic with django-ninja)
    leaves with it, or changes under the product with that package's upgrade."""
    declared = {canonicalize_name(r.name) for r in _requirements(ROOT / "requirements.in")}
    distributions = importlib.metadata.packages_distributions()
    undeclared = {}
    for name, where in _imported_top_level_names().items():
        if name in sys.stdlib_module_names or name in APPS:
            continue
        owners = {canonicalize_name(owner) for owner in distributions.get(name, [])}
        if not owners & declared:
            undeclared[name] = (where, sorted(owners) or "not installed")
    assert not undeclared, f"imported by the product but not in requirements.in: {undeclared}"


def test_the_dependency_check_sees_function_local_imports(tmp_path):
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "views.py").write_text("def send():\n    import requests\n    from yaml import safe_load\n")
    assert _imported_top_level_names(tmp_path, ("app",)) == {"requests": "app/views.py", "yaml": "app/views.py"}


def _aiohttp_internals(tree: ast.Module) -> list[str]:
    """Methods of aiohttp's classes a subclass overrides, and private names reached through the package."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and any(ast.unparse(base).startswith("aiohttp") for base in node.bases):
            found += [f"{node.name}.{item.name}" for item in node.body
                      if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
                      and item.name.startswith("_") and not item.name.endswith("__")]
        elif isinstance(node, ast.Attribute) and (spelled := ast.unparse(node)).startswith("aiohttp.") \
                and "._" in spelled:
            found.append(spelled)
        elif isinstance(node, ast.ImportFrom) and (module := node.module or "").split(".")[0] == "aiohttp":
            found += [f"{module}.{alias.name}" for alias in node.names if f"{module}.{alias.name}".count("._")]
    return found


def test_the_product_uses_no_private_aiohttp_method():
    """A subclass overriding an aiohttp internal (as aiohttp-socks overrode _wrap_create_connection, whose
    signature aiohttp 3.10 changed) breaks with a patch release; the public hooks are checked at start."""
    private = {str(path): found for path, tree in _product_modules() if (found := _aiohttp_internals(tree))}
    assert not private, f"aiohttp internals used: {private}"


def test_the_internals_check_sees_an_override_and_a_private_name():
    tree = ast.parse("import aiohttp\nfrom aiohttp.connector import _SSL_CONTEXT_VERIFIED\n"
                     "class C(aiohttp.TCPConnector):\n    async def _wrap_create_connection(self): ...\n"
                     "    def __init__(self): aiohttp.connector._DNSCacheTable()\n")
    assert sorted(_aiohttp_internals(tree)) == ["C._wrap_create_connection", "aiohttp.connector._DNSCacheTable",
                                                "aiohttp.connector._SSL_CONTEXT_VERIFIED"]


@pytest.mark.parametrize("lock", ["requirements.txt", "requirements-dev.txt"])
def test_every_locked_package_has_hashes(lock):
    text = (ROOT / lock).read_text()
    blocks = re.split(r"\n(?=[A-Za-z0-9])", text)
    unhashed = [block.split()[0] for block in blocks if PIN.match(block) and "--hash=sha256:" not in block]
    assert not unhashed, f"{lock}: packages without hashes: {unhashed}"


def test_the_runtime_lock_is_the_dev_lock_minus_the_test_tools():
    runtime, dev = _pins(ROOT / "requirements.txt"), _pins(ROOT / "requirements-dev.txt")
    differing = {name: (version, dev.get(name)) for name, version in runtime.items() if dev.get(name) != version}
    assert not differing, f"the tests would run on other versions than ship: {differing}"
