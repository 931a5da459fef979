"""The locks say what the `.in` files say: a pin edited in one place only would ship something else."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==([^\s;\\]+)")


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        match = PIN.match(line.strip())
        if match:
            pins[match[1].lower().replace("_", "-")] = match[2]
    return pins


@pytest.mark.parametrize(
    ("source", "lock"),
    [("requirements.in", "requirements.txt"), ("requirements-dev.in", "requirements-dev.txt")],
)
def test_every_direct_pin_is_locked_at_the_same_version(source, lock):
    wanted, locked = _pins(ROOT / source), _pins(ROOT / lock)
    assert wanted, f"{source} pins nothing"
    drift = {name: (version, locked.get(name)) for name, version in wanted.items() if locked.get(name) != version}
    assert not drift, f"re-run pip-compile (docs/operate/install.md, Dependencies): {drift}"


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
