"""The capture child imports nothing of Django (docs/internals/design/dispatcher-layers.md): it is started as
`-m dispatcher.capture.sandbox`, which first imports dispatcher/__init__.py and the packages on the way, so an
import added to one of those would bring Django into the process that runs what an admin typed."""
import subprocess

from dispatcher.capture.sandbox import CHILD_COMMAND, CHILD_ENVIRONMENT
from tests.docs.pages import ROOT


def test_the_capture_child_imports_no_django_and_no_other_app():
    """The child's own command, with -X importtime (every module imported, on stderr); stdin closed at once,
    so it starts, reads nothing and ends."""
    python, *arguments = CHILD_COMMAND
    done = subprocess.run([python, "-X", "importtime", *arguments], cwd=ROOT, env=CHILD_ENVIRONMENT, input=b"",
                          capture_output=True, check=True)
    imported = [line.split("|")[-1].strip() for line in done.stderr.decode().splitlines() if line.count("|") == 2]
    assert "dispatcher.capture" in imported  # the probe sees the child's imports
    forbidden = [name for name in imported if name.split(".")[0] in ("django", "crm", "workflows", "config")]
    assert forbidden == [], f"the capture child imports {forbidden}"
