"""Capture expressions evaluated in a child process, so that one that runs too long can be stopped.

An admin's JSONPath or XPath runs over a receiver's answer: an EXSLT regular expression, an O(n²) XPath
or a JSONPath filter regex can take minutes on a crafted body, inside C code that no signal interrupts.
The child is killed when WEBHOOK_CAPTURE_TIMEOUT passes, and started again for the next capture. It
imports neither Django nor the project's models, only the parsers, and starts with an empty environment:
what it runs is chosen by an admin and fed by a receiver, so it gets no key, password or database URL.

What an expression selects is collected up to a byte budget per expression (``max_bytes``): `$..*` on a
1 MB answer selects every node with all its descendants (92 MB as JSON), `//*` every element's text; the
child stops collecting once over the budget, so neither it nor the worker ever holds more.

Protocol: one JSON line per request on the child's stdin, one JSON line per answer on its stdout.
"""
import base64
import json
import os
import re
import selectors
import subprocess
import sys
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from jsonpath_ng.ext import parse as jsonpath_parse
from lxml import etree

from dispatcher.rendering.xml import safe_parser

JSONPATH, XPATH = "JSONPATH", "XPATH"  # the values of CaptureType


class CaptureTimeout(Exception):
    """The expressions did not finish within the time bound."""


DTD_REFUSED = "The response declares a DTD, which is refused, so nothing was captured."
_DOCTYPE = re.compile(rb"<!DOCTYPE", re.IGNORECASE)
DOCTYPE_WINDOW = 4096  # a DOCTYPE comes before the root element, so near the start


class CaptureUnreadable(ValueError):
    """The body is not a document of the capture's type."""


def document_parse(body: bytes, capture_type: str) -> Any:
    if capture_type == JSONPATH:
        try:
            return json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise CaptureUnreadable("The response is not JSON, so nothing was captured.") from None
    try:
        root = etree.fromstring(body, parser=safe_parser())
    except (etree.XMLSyntaxError, ValueError):
        # An entity the refused DTD would define makes the rest unreadable: say it was the DTD.
        raise CaptureUnreadable(DTD_REFUSED if _DOCTYPE.search(body[:DOCTYPE_WINDOW]) else
                                "The response is not well-formed XML, so nothing was captured.") from None
    if root is None or root.getroottree().docinfo.internalDTD is not None:
        # Entity tricks (XXE, billion laughs) live in DTDs; a response needs none.
        raise CaptureUnreadable(DTD_REFUSED)
    return root


def matches_find(document: Any, expression: str, capture_type: str, namespaces: dict[str, str],
                 max_bytes: int) -> tuple[list[Any], list[int] | None]:
    """The values an expression selects, at most max_bytes of them as JSON, and [kept, selected] when
    that cut some off. An expression valid when saved can still fail on a document: then nothing."""
    try:
        if capture_type == JSONPATH:
            selected = [m.value for m in jsonpath_parse(expression).find(document)]
        else:
            result = etree.XPath(expression, namespaces=namespaces)(document)
            selected = result if isinstance(result, list) else [result]
    except Exception:  # noqa: BLE001 - a hostile expression yields nothing, never an error
        return [], None
    kept, cut = values_within(selected, max_bytes)
    return kept, [len(kept), len(selected)] if cut else None


def values_within(items: Iterable[Any], max_bytes: int) -> tuple[list[Any], bool]:
    """The plain values of items (see _plain), in order, while they fit in max_bytes of JSON (UTF-8, a
    separator each); the one that does not fit is cut if it is text, and nothing after it is even turned
    into text. Returns the values and whether something was cut or left out."""
    kept: list[Any] = []
    room = max_bytes
    for item in items:
        value = _plain(item, room)
        size = json_size(value) + 1
        if size <= room:
            kept.append(value)
            room -= size
            continue
        if isinstance(value, str) and (part := text_within(value, room - 1)):
            kept.append(part)
        return kept, True
    return kept, False


def json_size(value: Any) -> int:
    """Bytes of value as stored: JSON text in UTF-8 (lone surrogates counted, not refused)."""
    return len(json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass"))


def text_within(text: str, max_bytes: int) -> str:
    """The longest start of text that takes at most max_bytes as a JSON string."""
    if max_bytes <= 2:
        return ""
    data = text.encode("utf-8", "surrogatepass")[:max_bytes - 2]
    part = ""
    for end in range(len(data), max(len(data) - 4, -1), -1):  # not inside a UTF-8 sequence
        try:
            part = data[:end].decode("utf-8", "surrogatepass")
            break
        except UnicodeDecodeError:
            continue
    while part and (excess := json_size(part) - max_bytes) > 0:  # escapes (\" \n \u0000) take more room
        part = part[:len(part) - excess]
    return part


def _plain(item: Any, room: int) -> Any:
    """Scalars as they are (lxml's strings as plain str); an element as its text; objects and lists as their
    JSON text, written only as far as room needs (more than room is cut anyway)."""
    if isinstance(item, etree._Element):
        return str(item.xpath("string()"))
    if isinstance(item, (dict, list)):
        parts, length = [], 0
        for chunk in json.JSONEncoder(ensure_ascii=False).iterencode(item):
            parts.append(chunk)
            length += len(chunk)
            if length > room:
                break
        return "".join(parts)
    if isinstance(item, bool) or item is None or isinstance(item, (int, float)):
        return item
    return str(item)


def evaluate(request: dict) -> dict:
    """{"type", "body" (base64), "expressions", "namespaces", "max_bytes" (one per expression)} ->
    {"matches": [[…], …], "cut": [None or [kept, selected], …]} or {"error": …}."""
    try:
        document = document_parse(base64.b64decode(request["body"]), request["type"])
    except CaptureUnreadable as error:
        return {"error": str(error)}
    found = [matches_find(document, expression, request["type"], request["namespaces"], max_bytes)
             for expression, max_bytes in zip(request["expressions"], request["max_bytes"], strict=True)]
    return {"matches": [matches for matches, _ in found], "cut": [cut for _, cut in found]}


def _pipes(process: subprocess.Popen[bytes]) -> tuple[IO[bytes], IO[bytes]]:
    """The child's stdin and stdout (both are pipes, so both are there)."""
    if process.stdin is None or process.stdout is None:
        raise BrokenPipeError("the capture process has no pipes")
    return process.stdin, process.stdout


# The child's command: -E ignores PYTHON* variables (there are none anyway), -s the user's site-packages.
# With -m, the working directory (the project) is where the dispatcher package is found.
CHILD_COMMAND = (sys.executable, "-E", "-s", "-m", "dispatcher.capture.sandbox")
CHILD_ENVIRONMENT: dict[str, str] = {}  # nothing of the worker's: no DJANGO_SECRET_KEY, keys or DATABASE_URL


class Sandbox:
    """One child process, used by one thread at a time (a capture worker owns one; the lock serialises the
    callers of the process-wide one)."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.pid = 0
        self.lock = threading.Lock()

    def run(self, request: dict, timeout: float) -> dict:
        with self.lock:
            stdin, stdout = _pipes(self._process())
            line = json.dumps(request, ensure_ascii=True) + "\n"
            try:
                stdin.write(line.encode())
                stdin.flush()
                with selectors.DefaultSelector() as selector:
                    selector.register(stdout, selectors.EVENT_READ)
                    if not selector.select(timeout):
                        raise CaptureTimeout
                answer = stdout.readline()
                if not answer:
                    raise BrokenPipeError("the capture process ended")
                return json.loads(answer)
            except BaseException:
                self.stop()  # killed mid-expression, or broken: the next capture starts a new one
                raise

    def _process(self) -> subprocess.Popen[bytes]:
        if self.process is None or self.pid != os.getpid() or self.process.poll() is not None:
            root = Path(__file__).resolve().parents[2]  # the project, where -m finds the dispatcher package
            self.process = subprocess.Popen(CHILD_COMMAND, cwd=root, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                            stderr=subprocess.DEVNULL, env=CHILD_ENVIRONMENT)
            self.pid = os.getpid()
            # The time bound is the expressions', not the interpreter's start: wait for the child to be ready.
            _, stdout = _pipes(self.process)
            with selectors.DefaultSelector() as selector:
                selector.register(stdout, selectors.EVENT_READ)
                if not selector.select(STARTUP_SECONDS) or stdout.readline() != READY:
                    raise BrokenPipeError("the capture process did not start")
        return self.process

    def stop(self) -> None:
        if self.process is not None and self.pid == os.getpid():
            self.process.kill()
            self.process.wait()
        self.process = None

    def kill(self) -> None:
        """Stop the child from another thread (a worker process stopping): the owner's capture then ends
        with BrokenPipeError, and a child stuck in an expression does not outlive the worker."""
        process = self.process
        if process is not None and self.pid == os.getpid():
            process.kill()


sandbox = Sandbox()
READY = b"ready\n"
STARTUP_SECONDS = 60  # generous: only a machine in trouble takes more than a second


def main() -> None:
    sys.stdout.buffer.write(READY)
    sys.stdout.flush()
    for line in sys.stdin.buffer:
        try:
            answer = evaluate(json.loads(line))
        except Exception as error:  # noqa: BLE001 - a malformed request: answer, never die
            answer = {"error": f"The capture could not be evaluated ({type(error).__name__})."}
        sys.stdout.write(json.dumps(answer, ensure_ascii=True) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
