"""The configuration reference (docs/operate/configuration.md), generated from the code that reads the environment.

The source is parsed, not imported: `ast` finds every read of an environment variable (django-environ's
`env.str`, `env.int`, … in config/settings.py; `os.environ.get`, `os.environ[…]` and `os.getenv` in any module of
the apps; `${NAME:-default}` in the Procfile) with its type and default, and `tokenize` finds the comment written
next to it (the comment lines just above, and the one at the end of the line). Importing the settings would give
the values of this machine's environment, not the defaults. A variable read without a comment, or added without
`python scripts/docs_generate.py`, fails tests/docs/test_configuration_reference.py.
"""
import ast
import io
import re
import tokenize
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = Path("config/settings.py")
APPS = ("config", "crm", "dispatcher", "workflows")
PROCFILE = Path("Procfile")
TEMPLATE = ROOT / "docs" / "_templates" / "configuration.md.in"
MARKER = "<!-- reference -->"
OUTSIDE_SECTION = "Outside the settings"

# django-environ's readers (environ.Env) and what the page calls the value they take.
ENV_TYPES = {
    "str": "string", "int": "integer", "float": "number", "bool": "boolean", "list": "list",
    "tuple": "list", "dict": "mapping", "json": "JSON", "url": "URL", "db": "database URL",
    "db_url": "database URL", "email_url": "e-mail URL", "cache": "cache URL", "cache_url": "cache URL",
    "path": "path",
}
CASTS = {"int": "integer", "float": "number"}  # int(os.environ.get(…)) and the like
SECTION = re.compile(r"^#\s*---\s*(?P<title>[^-].*?)\s*-+\s*$")
PRAGMA = re.compile(r"^(noqa\b|type:|pragma:|fmt:)")
SHELL_READ = re.compile(r"\$\{(?P<name>[A-Z][A-Z0-9_]*)(?::?-(?P<default>[^}]*))?\}")
CONSTANT_NAME = re.compile(r"(?<![\w`/])([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)(?![\w`])")
# URLs (without the punctuation that ends a sentence) and the project's paths, shown as code.
URL = re.compile(r"(?<![\w`])([a-z][a-z0-9+.-]*://(?:[^\s`]*[^\s`.,;:)])?)")
PATH = re.compile(r"(?<![\w`/])((?:var|config|crm|dispatcher|workflows|scripts|docs|[A-Z][A-Z0-9_]*)/(?:[\w./-]*\w)?)")


@dataclass(frozen=True)
class Variable:
    """One environment variable as the page shows it; `meaning` and `default` are Markdown."""

    name: str
    type: str
    default: str
    meaning: str
    section: str
    source: str
    also_read_by: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Comments:
    """The comments of one file, by line: whole-line comments and those at the end of a line of code."""

    whole: dict[int, str]
    trailing: dict[int, str]

    @classmethod
    def of(cls, text: str) -> "_Comments":
        whole: dict[int, str] = {}
        trailing: dict[int, str] = {}
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type == tokenize.COMMENT:
                body = token.string.lstrip("#").strip()
                is_whole = not token.line[:token.start[1]].strip()
                (whole if is_whole else trailing)[token.start[0]] = body
        return cls(whole, trailing)

    def block_above(self, line: int) -> list[str]:
        """The whole-line comments just above `line` (up to a blank line, code or a section heading)."""
        block: list[str] = []
        line -= 1
        while line in self.whole and not SECTION.match(f"# {self.whole[line]}"):
            block.insert(0, self.whole[line])
            line -= 1
        return [text for text in block if not PRAGMA.match(text)]

    def next_to(self, *lines: int) -> str:
        """The comment of a read: of the first of `lines` that has one, the block above and the end of the line."""
        for line in lines:
            end = self.trailing.get(line, "")
            parts = [*self.block_above(line), *([] if PRAGMA.match(end) else [end])]
            if text := " ".join(part for part in parts if part):
                return text
        return ""


def _sections(text: str) -> list[tuple[int, str]]:
    """(line, title) of each `# --- Title ---` heading, in order."""
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        if match := SECTION.match(line.strip()):
            found.append((number, match.group("title")))
    return found


def _is_name(node: ast.expr, name: str) -> bool:
    return isinstance(node, ast.Name) and node.id == name


def _is_os_environ(node: ast.expr) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "environ" and _is_name(node.value, "os")


def _text(node: ast.expr) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


OS_READER = "os"  # os.environ.get and os.getenv: no reader of django-environ


def _reader(func: ast.expr) -> str | None:
    """The django-environ reader a call is made with ("int", "list", …), OS_READER for os.environ.get or
    os.getenv, None for any other call."""
    if not isinstance(func, ast.Attribute):
        return None
    if _is_name(func.value, "env") and func.attr in ENV_TYPES:
        return func.attr
    if (func.attr == "get" and _is_os_environ(func.value)) or (func.attr == "getenv" and _is_name(func.value, "os")):
        return OS_READER
    return None


def _read(node: ast.AST) -> tuple[str, str | None, ast.expr | None, ast.expr] | None:
    """(name, django-environ reader or None, default expression, the name's node) if `node` reads a variable."""
    if isinstance(node, ast.Subscript) and _is_os_environ(node.value) and isinstance(node.ctx, ast.Load) \
            and (name := _text(node.slice)):
        return name, None, None, node.slice
    if not isinstance(node, ast.Call) or not node.args or not (name := _text(node.args[0])) \
            or not (reader := _reader(node.func)):
        return None
    default = next((k.value for k in node.keywords if k.arg == "default"), node.args[1] if len(node.args) > 1 else None)
    return name, None if reader == OS_READER else reader, default, node.args[0]


def _constant(node: ast.expr) -> object:
    """The value of a literal default (numbers, strings, lists, and arithmetic on numbers); ValueError if not one."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult | ast.Add | ast.Sub):
        left, right = _constant(node.left), _constant(node.right)
        if isinstance(left, int | float) and isinstance(right, int | float):
            return left * right if isinstance(node.op, ast.Mult) else left + right if isinstance(node.op, ast.Add) \
                else left - right
        raise ValueError("not arithmetic on numbers")
    return ast.literal_eval(node)


def _spelled(value: object) -> str:
    """A default as one would write it in the environment."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, float):
        return f"`{value:g}`"
    if isinstance(value, list | tuple):
        return f"`{','.join(str(item) for item in value)}`" if value else "empty"
    return f"`{value}`" if value != "" else "empty"


def _outside_code(text: str, change: Callable[[str], str]) -> str:
    pieces = re.split(r"(`[^`]*`)", text)
    return "".join(change(piece) if index % 2 == 0 else piece for index, piece in enumerate(pieces))


def _markdown(text: str, *, sentence: bool = True) -> str:
    """Comment text as a table cell: URLs, paths and constants' names as code, Markdown's special characters
    kept literal; a sentence starts with a capital and ends with a full stop, a default is a phrase."""
    text = _outside_code(text, lambda piece: PATH.sub(r"`\1`", URL.sub(r"`\1`", piece)))
    text = _outside_code(text, lambda piece: CONSTANT_NAME.sub(r"`\1`", piece.replace("\\", "\\\\").replace(
        "*", "\\*").replace("<", "&lt;").replace(">", "&gt;")))
    cell = text.replace("|", "\\|").strip()
    if not cell or not sentence:
        return cell.rstrip(".")
    return cell[:1].upper() + cell[1:] + ("" if cell.endswith((".", "!", "?")) else ".")


def _meaning_and_default(comment: str) -> tuple[str, str | None]:
    """A comment's text, and what follows "Default:" in it (the default described in words), if anything."""
    meaning, found, default = comment.partition("Default:")
    return meaning.strip(), default.strip() if found else None


class PythonReads:
    """The environment variables one Python file reads, in the order they are read (`text`: its source, if
    not the file's)."""

    def __init__(self, path: Path, text: str | None = None) -> None:
        self.path = path
        self.text = (ROOT / path).read_text(encoding="utf-8") if text is None else text
        self.tree = ast.parse(self.text)
        self.comments = _Comments.of(self.text)
        self.sections = _sections(self.text)
        self.parents = {child: parent for parent in ast.walk(self.tree) for child in ast.iter_child_nodes(parent)}
        # A setting assigned straight from a variable, for a default that is "as that variable".
        self.assigned: dict[str, str] = {}
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name) \
                    and (read := _read(node.value)):
                self.assigned[node.targets[0].id] = read[0]

    def variables(self, section: str | None = None) -> Iterator[Variable]:
        reads = [(node, read) for node in ast.walk(self.tree) if (read := _read(node))]
        reads.sort(key=lambda pair: (pair[1][3].lineno, pair[1][3].col_offset))
        for node, (name, reader, default, name_node) in reads:
            call_line = node.lineno if isinstance(node, ast.expr) else name_node.lineno
            meaning, described = _meaning_and_default(self.comments.next_to(name_node.lineno, call_line))
            yield Variable(
                name=name, type=ENV_TYPES[reader] if reader else self._cast(node), source=str(self.path),
                default=_markdown(described, sentence=False) if described
                else "required" if isinstance(node, ast.Subscript) else self._default(default, reader),
                meaning=_markdown(meaning), section=section or self._section(name_node.lineno))

    def _cast(self, node: ast.AST) -> str:
        parent = self.parents.get(node)
        if isinstance(parent, ast.Call) and isinstance(parent.func, ast.Name) and parent.func.id in CASTS:
            return CASTS[parent.func.id]
        return "string"

    def _default(self, node: ast.expr | None, reader: str | None) -> str:
        if node is None:
            return "none" if reader is None else "required"
        if isinstance(node, ast.Name) and node.id in self.assigned:
            return f"as `{self.assigned[node.id]}`"
        try:
            value = _constant(node)
        except ValueError:
            return f"`{ast.get_source_segment(self.text, node)}`"
        if reader is None and isinstance(value, str) and re.fullmatch(r"-?\d+(\.\d+)?", value):
            return f"`{value}`"  # os.environ.get("PORT", "8000"): the text, read as a number
        return _spelled(value)

    def _section(self, line: int) -> str:
        titles = [title for start, title in self.sections if start < line]
        return titles[-1] if titles else OUTSIDE_SECTION


def _procfile_variables() -> Iterator[Variable]:
    """`${NAME:-default}` in the Procfile's commands, with the comment lines above the process's line."""
    lines = (ROOT / PROCFILE).read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines):
        if line.lstrip().startswith("#"):
            continue
        above: list[str] = []
        for previous in reversed(lines[:number]):
            if not previous.lstrip().startswith("#"):
                break
            above.insert(0, previous.lstrip().lstrip("#").strip())
        meaning, described = _meaning_and_default(" ".join(above))
        for match in SHELL_READ.finditer(line):
            given = match.group("default")
            yield Variable(name=match.group("name"), type="integer" if (given or "").isdigit() else "string",
                           default=_markdown(described, sentence=False) if described else f"`{given}`" if given
                           else "none",
                           meaning=_markdown(meaning), section=OUTSIDE_SECTION, source=str(PROCFILE))


def _python_files() -> list[Path]:
    """The apps' modules that may read the environment, config/settings.py first."""
    found = []
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            relative = path.relative_to(ROOT)
            if "migrations" in relative.parts or relative == SETTINGS:
                continue
            text = path.read_text(encoding="utf-8")
            if "environ" in text or "getenv" in text:
                found.append(relative)
    return [SETTINGS, *found]


def variables_read() -> list[Variable]:
    """Every environment variable the product reads, each once, where it is first read (settings first); the
    other places that read it are in `also_read_by`."""
    everything = [variable for path in _python_files()
                  for variable in PythonReads(path).variables(None if path == SETTINGS else OUTSIDE_SECTION)]
    everything += list(_procfile_variables())
    first: dict[str, Variable] = {}
    for variable in everything:
        if variable.name not in first:
            first[variable.name] = variable
        elif variable.source != first[variable.name].source and variable.source not in first[variable.name].also_read_by:
            kept = first[variable.name]
            first[variable.name] = replace(kept, also_read_by=(*kept.also_read_by, variable.source))
    return list(first.values())


def _row(variable: Variable) -> str:
    meaning = variable.meaning
    if variable.section == OUTSIDE_SECTION:
        meaning += f" Read by `{variable.source}`."
    if variable.also_read_by:
        meaning += " Also read by " + ", ".join(f"`{source}`" for source in variable.also_read_by) + "."
    return f"| `{variable.name}`{{#{variable.name}}} | {variable.type} | {variable.default} | {meaning.strip()} |"


def configuration_page() -> str:
    """docs/operate/configuration.md: the template's text, with a table per section of config/settings.py."""
    sections: dict[str, list[Variable]] = {}
    for variable in variables_read():
        sections.setdefault(variable.section, []).append(variable)
    tables = []
    for title, variables in sections.items():
        rows = "\n".join(_row(variable) for variable in variables)
        tables.append(f"## {title}\n\n| Variable | Type | Default | Meaning |\n|---|---|---|---|\n{rows}\n")
    return TEMPLATE.read_text(encoding="utf-8").replace(MARKER, "\n".join(tables).rstrip("\n"))
