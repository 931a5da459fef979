"""The product as a Python package (pyproject.toml) and its version (config/version.py).

A wheel built from the checkout holds the apps with their migrations, the templates and static files and the
`crm-webhooks` command; installed with pip into a new virtualenv it passes Django's checks and serves the
admin's templates from a folder outside the checkout. The version is written once and shown where operators
(/healthz) and admins (the admin's footer) look, and CHANGELOG.md has a section for it.

Installing offline: the local package index does not hold the locked versions of most runtime dependencies
(Django 5.2.19, celery 5.7.0, aiohttp 3.14.5, …), so pip cannot download them without the internet. The new
virtualenv therefore sees the locked runtime packages of the project's virtualenv, and only those (a folder of
links to the distributions requirements.txt pins, named in a .pth file); `pip install --no-index` resolves the
wheel's dependencies against them, so a dependency pyproject.toml declares that the lock does not hold fails
the install, and one the code imports but neither declares fails the checks.
"""
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from django.urls import reverse
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from config.version import __version__
from tests.factories import staff_login

ROOT = Path(__file__).resolve().parent.parent
APPS = ("crm", "dispatcher", "workflows", "config")
FOOTER = re.compile(r'<footer id="footer">(.*?)</footer>', re.DOTALL)
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==")
COMMAND_TIMEOUT = 600  # a bound against a hung subprocess on a loaded machine, not a time the test expects


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def requirement_lines(path: Path) -> list[str]:
    """The requirements a .in file states itself: not its comments, nor its -r/-c lines."""
    lines = (line.split(" #", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith(("#", "-"))]


def requirement_keys(requirements: list[str]) -> set[tuple]:
    parsed = [Requirement(requirement) for requirement in requirements]
    return {(canonicalize_name(r.name), tuple(sorted(r.extras)), str(r.specifier), str(r.marker)) for r in parsed}


def test_the_package_depends_on_what_requirements_in_pins():
    declared = requirement_keys(pyproject()["project"]["dependencies"])
    wanted = requirement_keys(requirement_lines(ROOT / "requirements.in"))
    assert declared == wanted, (f"pyproject.toml's [project] dependencies differ from requirements.in: add "
                                f"{sorted(wanted - declared)}, remove {sorted(declared - wanted)}")


def test_the_dev_extra_is_what_requirements_dev_in_adds():
    declared = requirement_keys(pyproject()["project"]["optional-dependencies"]["dev"])
    wanted = requirement_keys(requirement_lines(ROOT / "requirements-dev.in"))
    assert declared == wanted, (f"pyproject.toml's dev extra differs from requirements-dev.in: add "
                                f"{sorted(wanted - declared)}, remove {sorted(declared - wanted)}")


def test_the_requirement_reader_takes_only_requirements(tmp_path):
    source = tmp_path / "requirements.in"
    source.write_text("# a comment\n-c requirements.txt\n-r requirements.in\n\npsycopg[binary]==3.3.9  # why\n")
    assert requirement_lines(source) == ["psycopg[binary]==3.3.9"]


def test_the_changelog_opens_with_unreleased_then_the_version():
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    versions = re.findall(r"^## \[([^\]]+)\](?: - (\d{4}-\d{2}-\d{2}))?$", text, re.MULTILINE)
    assert versions[:2] and versions[0] == ("Unreleased", ""), "CHANGELOG.md must start with ## [Unreleased]"
    assert versions[1][0] == __version__ and versions[1][1], (
        f"the newest released section of CHANGELOG.md is {versions[1][0]}, config/version.py says "
        f"{__version__}: a release moves Unreleased under a dated ## [{__version__}] - YYYY-MM-DD")
    assert re.fullmatch(r"\d+\.\d+\.\d+", __version__), "a semantic version, MAJOR.MINOR.PATCH"


def test_the_site_shows_the_changelog_file_itself():
    assert '--8<-- "CHANGELOG.md"' in (ROOT / "docs" / "changelog.md").read_text(encoding="utf-8")


def test_healthz_names_the_version(client, db):
    body = client.get("/healthz").json()
    assert body["version"] == __version__ and body["checks"]["database"] == "ok"


def test_every_admin_page_names_the_version_in_its_footer(client, organization):
    login_page = client.get(reverse("admin:login")).content.decode()
    assert f"CRM webhooks {__version__}" in FOOTER.search(login_page).group(1)
    client.force_login(staff_login(organization, "auditor", group="Auditor"))
    log_page = client.get(reverse("admin:dispatcher_delivery_changelist"))
    assert log_page.status_code == 200
    assert f"CRM webhooks {__version__}" in FOOTER.search(log_page.content.decode()).group(1)


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    """A command that must succeed; its output is the failure message when it does not."""
    result = subprocess.run(command, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, **kwargs)
    assert result.returncode == 0, f"{' '.join(command)} exited {result.returncode}:\n{result.stdout}{result.stderr}"
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel `python -m build` makes of a copy of the checkout (setuptools writes build/ and *.egg-info
    beside the sources, which must not land in the checkout other processes use)."""
    source, dist = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("dist")
    for name in (*APPS, "templates"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(source)])
    (built,) = dist.glob("*.whl")
    return built


def checkout_files(folder: str, pattern: str = "*") -> set[str]:
    return {str(path.relative_to(ROOT)) for path in (ROOT / folder).rglob(pattern)
            if path.is_file() and "__pycache__" not in path.parts}


def test_the_wheel_holds_the_apps_their_migrations_templates_static_files_and_the_command(wheel):
    assert wheel.name == f"crm_webhooks-{__version__}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        info = f"crm_webhooks-{__version__}.dist-info"
        entry_points = archive.read(f"{info}/entry_points.txt").decode()
        top_level = set(archive.read(f"{info}/top_level.txt").decode().split())
        metadata = archive.read(f"{info}/METADATA").decode()
    assert top_level == {*APPS, "templates"}
    expected = checkout_files("templates")
    for app in APPS:
        expected |= checkout_files(app, "*.py") | (checkout_files(f"{app}/static") if (ROOT / app / "static").is_dir()
                                                   else set())
    missing = sorted(expected - names)
    assert not missing, f"files the product needs that the wheel lacks: {missing}"
    assert {name for name in names if "/migrations/0001_" in name} == {
        f"{app}/migrations/0001_initial.py" for app in ("crm", "dispatcher", "workflows")}
    assert "[console_scripts]\ncrm-webhooks = config.manage:main" in entry_points
    assert f"\nVersion: {__version__}\n" in metadata and "\nRequires-Python: >=3.11\n" in metadata
    assert not [name for name in names if name.startswith(("tests/", "bench/", "docs/", "var/"))]


def locked_runtime_view(folder: Path) -> Path:
    """A folder of links to the distributions requirements.txt pins, as the project's virtualenv has them
    installed: their packages and modules and their .dist-info, nothing of the test tools."""
    folder.mkdir()
    lock = (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()
    for name in sorted({match[1] for line in lock if (match := PIN.match(line))}):
        distribution = importlib.metadata.distribution(name)
        site_packages = Path(str(distribution.locate_file("")))
        for top in {Path(str(file)).parts[0] for file in distribution.files or ()} - {"..", "__pycache__"}:
            if not (folder / top).exists() and (site_packages / top).exists():
                (folder / top).symlink_to(site_packages / top)
    return folder


SERVED = """
import importlib.util, json, config
from django.test import Client
client = Client()
print(json.dumps({"config": config.__file__, "healthz": client.get("/healthz").json(),
                  "login": client.get("/admin/login/").content.decode(),
                  "test_tools": [name for name in ("pytest", "hypothesis", "mypy") if importlib.util.find_spec(name)]}))
"""


def test_pip_installs_the_wheel_into_a_new_virtualenv_that_runs_outside_the_checkout(wheel, tmp_path):
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)])
    python, bin_dir = venv / "bin" / "python", venv / "bin"
    purelib = run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]).stdout.strip()
    (Path(purelib) / "locked-runtime.pth").write_text(f"{locked_runtime_view(tmp_path / 'locked-runtime')}\n")
    # A clean environment: no pip configuration, no settings of the suite, nothing pointing at the checkout.
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    environment = {"PATH": f"{bin_dir}{os.pathsep}{os.defpath}", "HOME": str(tmp_path), "LANG": "C.UTF-8",
                   "PIP_CONFIG_FILE": os.devnull, "VAR_DIR": str(tmp_path / "var"),
                   "DJANGO_ALLOWED_HOSTS": "testserver"}
    installed = run([str(bin_dir / "pip"), "install", "--no-index", str(wheel)], cwd=outside, env=environment)
    assert f"Successfully installed crm-webhooks-{__version__}" in installed.stdout
    run([str(bin_dir / "pip"), "check"], cwd=outside, env=environment)

    run([str(python), "-m", "config.keys"], cwd=outside, env=environment)  # the keys an installation keeps
    checked = run([str(bin_dir / "crm-webhooks"), "check"], cwd=outside, env=environment)
    assert "System check identified no issues" in checked.stdout

    served = run([str(bin_dir / "crm-webhooks"), "shell", "-c", SERVED], cwd=outside, env=environment)
    answers = json.loads(served.stdout.strip().splitlines()[-1])
    assert Path(answers["config"]).is_relative_to(purelib), "the installed package, not the checkout"
    assert answers["test_tools"] == [], "the new virtualenv sees the runtime lock only"
    assert answers["healthz"]["version"] == __version__ and answers["healthz"]["checks"]["database"] == "ok"
    # The footer comes from templates/admin/base_site.html: the installed product finds its templates.
    assert f"CRM webhooks {__version__}" in FOOTER.search(answers["login"]).group(1)
