"""Capture expressions evaluated in a child process, so that one that runs too long can be stopped.

An admin's JSONPath or XPath runs over a receiver's answer: an EXSLT regular expression, an O(n²) XPath
or a JSONPath filter regex can take minutes on a crafted body, inside C code that no signal interrupts.
The child is killed when WEBHOOK_CAPTURE_TIMEOUT passes, and started again for the next capture. It
imports neither Django nor the project's models: only the parsers.

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
from pathlib import Path
from typing import IO, Any

from jsonpath_ng.ext import parse as jsonpath_parse
from lxml import etree

from dispatcher.xml import safe_parser

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


def matches_find(document: Any, expression: str, capture_type: str, namespaces: dict[str, str]) -> list[Any]:
    """The values an expression selects; an expression valid when saved can still fail on a document."""
    try:
        if capture_type == JSONPATH:
            return [_plain(m.value) for m in jsonpath_parse(expression).find(document)]
        result = etree.XPath(expression, namespaces=namespaces)(document)
    except Exception:  # noqa: BLE001 - a hostile expression yields nothing, never an error
        return []
    items = result if isinstance(result, list) else [result]
    return [str(item.xpath("string()")) if isinstance(item, etree._Element) else _plain(item) for item in items]


def _plain(value: Any) -> Any:
    """Scalars as they are (lxml's strings as plain str); objects and lists as their JSON text."""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool) or value is None or isinstance(value, (int, float)):
        return value
    return str(value)


def evaluate(request: dict) -> dict:
    """{"type", "body" (base64), "expressions", "namespaces"} -> {"matches": [[…], …]} or {"error": …}."""
    try:
        document = document_parse(base64.b64decode(request["body"]), request["type"])
    except CaptureUnreadable as error:
        return {"error": str(error)}
    return {"matches": [matches_find(document, e, request["type"], request["namespaces"])
                        for e in request["expressions"]]}



def _pipes(process: subprocess.Popen[bytes]) -> tuple[IO[bytes], IO[bytes]]:
    """The child's stdin and stdout (both are pipes, so both are there)."""
    if process.stdin is None or process.stdout is None:
        raise BrokenPipeError("the capture process has no pipes")
    return process.stdin, process.stdout


class Sandbox:
    """The child process of this worker process (one at a time; callers are serialised)."""

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
            root = Path(__file__).resolve().parents[1]
            self.process = subprocess.Popen(
                [sys.executable, "-m", "dispatcher.capture_sandbox"], cwd=root, stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(root)})
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
