"""docs/operate/configuration.md is generated from the code that reads the environment: the committed page is
what the code generates now, every variable read anywhere is on it, each with the comment that says what it
is for, and the parser reads types, defaults, comments and sections as they are written."""
import re
from pathlib import Path

from config.settings_reference import OUTSIDE_SECTION, PythonReads, configuration_page, variables_read
from tests.docs.pages import ROOT, page

PAGE = "operate/configuration.md"
REGENERATE = "run python scripts/docs_generate.py"
# Reads as a grep would find them, independently of the generator's parser.
ENV_READ = re.compile(r"""\benv\.\w+\(\s*["']([A-Z][A-Z0-9_]*)["']""")
OS_READ = re.compile(r"""os\.(?:environ\.get\(|environ\[|getenv\()\s*["']([A-Z][A-Z0-9_]*)["']""")
SHELL_READ = re.compile(r"\$\{([A-Z][A-Z0-9_]*)")


def documented() -> set[str]:
    return set(re.findall(r"^\| `([A-Z][A-Z0-9_]*)`\{#\1\}", page(PAGE), re.MULTILINE))


def test_the_committed_page_is_the_generated_one():
    assert page(PAGE) == configuration_page(), f"docs/{PAGE} is stale: {REGENERATE}"


def test_every_variable_the_settings_read_is_on_the_page():
    settings = (ROOT / "config" / "settings.py").read_text(encoding="utf-8")
    read = set(ENV_READ.findall(settings)) | set(OS_READ.findall(settings))
    assert len(read) > 80
    missing = sorted(read - documented())
    assert not missing, f"read in config/settings.py, not on docs/{PAGE} ({REGENERATE}): {missing}"


def test_every_variable_read_elsewhere_in_the_product_is_on_the_page():
    read = {name for app in ("config", "crm", "dispatcher", "workflows") for path in (ROOT / app).rglob("*.py")
            if "migrations" not in path.parts for name in OS_READ.findall(path.read_text(encoding="utf-8"))}
    read |= set(SHELL_READ.findall((ROOT / "Procfile").read_text(encoding="utf-8")))
    assert {"VAR_DIR", "BIND", "WEB_CONCURRENCY", "WEB_THREADS", "WORKER_CONCURRENCY", "DEMO_ADMIN_PASSWORD"} <= read
    missing = sorted(read - documented())
    assert not missing, f"read by the product, not on docs/{PAGE} ({REGENERATE}): {missing}"


def test_every_variable_has_a_comment_saying_what_it_is_for():
    variables = variables_read()
    without = [f"{variable.name} ({variable.source})" for variable in variables if not variable.meaning.strip(" .")]
    assert not without, f"write a comment above the line that reads each of these, or at its end: {without}"
    assert len({variable.name for variable in variables}) == len(variables)


def test_the_page_groups_variables_by_the_sections_of_the_settings():
    text = page(PAGE)
    for heading, variable in (("## HTTPS", "DJANGO_SECURE_HSTS_SECONDS"), ("## Delivery engine", "WEBHOOK_DRAIN_BATCH"),
                              (f"## {OUTSIDE_SECTION}", "WORKER_CONCURRENCY")):
        start = text.index(heading)
        end = text.find("\n## ", start + 1)
        assert f"`{variable}`{{#{variable}}}" in text[start:end if end > 0 else None], (heading, variable)


def test_types_defaults_comments_and_sections_are_read_as_written():
    source = '''import os
env = object()
# --- Alpha ---------------
# What A is for,
# over two lines.
A = env.int("APP_A", default=10 * 1024)
B = env.bool("APP_B", default=A)  # what B is for
# --- Beta -----
# C's meaning. Default: twice APP_A.
C = env.float("APP_C", default=A * 2)
D = env.list("APP_D", default=["x", "y"])  # noqa: E501
E = int(os.environ.get("APP_E", "8"))  # workers
F = os.environ["APP_F"]  # required
G = env.str("APP_G", default="")  # empty means off
'''
    found = {variable.name: variable for variable in PythonReads(Path("example.py"), source).variables()}
    assert [(v.name, v.type, v.default, v.section) for v in found.values()] == [
        ("APP_A", "integer", "`10240`", "Alpha"),
        ("APP_B", "boolean", "as `APP_A`", "Alpha"),
        ("APP_C", "number", "twice `APP_A`", "Beta"),
        ("APP_D", "list", "`x,y`", "Beta"),
        ("APP_E", "integer", "`8`", "Beta"),
        ("APP_F", "string", "required", "Beta"),
        ("APP_G", "string", "empty", "Beta"),
    ]
    assert found["APP_A"].meaning == "What A is for, over two lines."
    assert found["APP_B"].meaning == "What B is for."
    assert found["APP_C"].meaning == "C's meaning."
    assert found["APP_D"].meaning == "", "a noqa pragma is not a meaning"
    assert found["APP_E"].meaning == "Workers."


def test_a_setting_added_without_a_comment_is_caught():
    source = 'env = object()\n# --- Alpha ---\nX = env.int("APP_X", default=1)\n'
    [variable] = PythonReads(Path("example.py"), source).variables()
    assert variable.meaning == "", "the section heading is not the setting's comment"
