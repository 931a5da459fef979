"""The documentation as the tests read it: the pages under docs/ and README.md, by path and by section."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
README = ROOT / "README.md"


def page(path: str) -> str:
    """The text of docs/<path>."""
    return (DOCS / path).read_text(encoding="utf-8")


def section(text: str, heading: str) -> str:
    """The part of a page under `heading` (without its #s), up to the next heading of the same or a higher
    level (lines in fenced code blocks, such as a shell comment, are not headings); a missing heading fails
    the test that asked for it, naming the heading."""
    lines, level, start, fenced = text.split("\n"), 0, None, False
    for number, line in enumerate(lines):
        if line.startswith("```"):
            fenced = not fenced
        heading_match = None if fenced else re.match(r"(#+) (.*)$", line)
        if heading_match and start is None and heading_match.group(2) == heading:
            level, start = len(heading_match.group(1)), number + 1
        elif heading_match and start is not None and len(heading_match.group(1)) <= level:
            return "\n".join(lines[start:number])
    assert start is not None, f"no heading {heading!r}"
    return "\n".join(lines[start:])


def blocks(text: str, language: str) -> list[str]:
    """The fenced code blocks of one language, in page order."""
    return re.findall(rf"^```{re.escape(language)}\n(.*?)^```", text, re.DOTALL | re.MULTILINE)
