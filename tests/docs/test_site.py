"""The documentation site stays inside the repository: what README.md and the pages under docs/ link to, and
what the site's navigation lists. `mkdocs build --strict` (scripts/test.sh) checks the links between pages
and their anchors; these checks hold where mkdocs does not look (README.md, links that leave docs/) and run
with pytest alone."""
import re
from pathlib import Path

import yaml

from tests.docs.pages import DOCS, README, ROOT

#: Inline links and images, reference definitions and autolinks, after code is taken out.
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)"
                  r"|^\s*\[[^\]]+\]:\s*(\S+)|<(https?://[^>\s]+)>", re.MULTILINE)
CODE = re.compile(r"^```.*?^```|`[^`\n]*`", re.DOTALL | re.MULTILINE)
README_MAX_LINES = 150


def markdown_files() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))]


def links(path: Path) -> list[str]:
    text = CODE.sub("", path.read_text(encoding="utf-8"))
    return [next(group for group in match.groups() if group) for match in LINK.finditer(text)]


def link_problem(source: Path, target: str) -> str | None:
    """Why a link may not stay as it is, or None. Links to other sites are allowed (standards, RFCs, package
    homepages); everything else must be a relative path to a file of this repository."""
    if target.startswith(("https://", "http://", "mailto:")) or target.startswith("#"):
        return None
    if re.match(r"[a-z][a-z0-9+.-]*:", target):
        return "a scheme other than http(s) or mailto"
    if target.startswith("/"):
        return "an absolute path (it would point outside the repository on GitHub and on the site)"
    path = target.split("#", 1)[0].split("?", 1)[0]
    if "shared/" in path or path.endswith("DESIGN.md"):
        return "the shared architecture folder outside the repository (link to docs/internals/architecture.md)"
    resolved = (source.parent / path).resolve()
    if not resolved.is_relative_to(ROOT):
        return "a path that climbs out of the repository"
    if not resolved.exists():
        return "a file that does not exist"
    return None


def test_no_markdown_file_links_outside_the_repository():
    problems = [f"{path.relative_to(ROOT)}: {target}: {problem}" for path in markdown_files()
                for target in links(path) if (problem := link_problem(path, target))]
    assert not problems, "\n".join(problems)


def test_the_link_check_sees_what_it_must_refuse(tmp_path):
    """The checker itself, on the links the site must never have again."""
    page = ROOT / "docs" / "use" / "example.md"  # where such a link would sit; the file need not exist
    assert link_problem(page, "../../../shared/DESIGN.md")
    assert link_problem(page, "../../../../etc/passwd")
    assert link_problem(page, "/docs/index.md")
    assert link_problem(page, "file:///work/shared/DESIGN.md")
    assert link_problem(page, "missing-page.md")
    assert link_problem(page, "webhooks.md") is None
    assert link_problem(page, "https://www.rfc-editor.org/rfc/rfc9457") is None
    text = "A [link](../x.md), `[not a link](../../../y)`, <https://example.com/a> and\n[ref]: ../z.md\n"
    (tmp_path / "page.md").write_text(text)
    assert links(tmp_path / "page.md") == ["../x.md", "https://example.com/a", "../z.md"]


def nav_pages(entries) -> list[str]:
    pages = []
    for entry in entries:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        pages.extend(nav_pages(value) if isinstance(value, list) else [value])
    return pages


def test_the_navigation_lists_every_page_once_and_only_pages_that_exist():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    listed = nav_pages(config["nav"])
    excluded = [line.strip().rstrip("/") for line in config.get("exclude_docs", "").splitlines() if line.strip()]
    pages = {str(path.relative_to(DOCS)) for path in DOCS.rglob("*.md")
             if not any(str(path.relative_to(DOCS)).startswith(prefix + "/") for prefix in excluded)}
    assert sorted(page for page in set(listed) if listed.count(page) > 1) == []
    assert sorted(pages - set(listed)) == [], "pages missing from the nav of mkdocs.yml"
    assert sorted(set(listed) - pages) == [], "nav entries of mkdocs.yml without a page"


def test_the_readme_stays_a_short_entry_into_the_site():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= README_MAX_LINES, "the README points into docs/; put the text in a page"
    assert "./scripts/dev.sh" in text and "./scripts/test.sh" in text, "the two commands"
    assert {"docs/use/tour.md", "docs/integrate/rest-api.md", "docs/operate/install.md",
            "docs/internals/architecture.md"} <= set(links(README))
