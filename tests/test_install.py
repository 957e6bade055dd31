"""The install: a runtime lock without test tools, a dev lock on top, CI running the README's command."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEST_TOOLS = {"pytest", "pytest-asyncio", "playwright", "mypy", "pluggy", "iniconfig", "greenlet"}


def _pins(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "-r")):
            name, _, version = line.partition("==")
            assert version, f"{path.name}: {line!r} is not an exact pin"
            out[name.lower().replace("_", "-")] = version
    return out


def test_runtime_lock_has_no_test_tools() -> None:
    runtime = _pins(ROOT / "requirements.lock")
    assert not TEST_TOOLS & set(runtime)


def test_dev_lock_is_the_runtime_lock_plus_the_test_tools() -> None:
    text = (ROOT / "requirements-dev.lock").read_text()
    assert "-r requirements.lock" in text.splitlines()
    dev = _pins(ROOT / "requirements-dev.lock")
    assert TEST_TOOLS <= set(dev)
    assert not set(dev) & set(_pins(ROOT / "requirements.lock"))  # each pin in one place


def test_every_runtime_dependency_is_pinned() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = _pins(ROOT / "requirements.lock")
    wanted = [(d, "requirements.lock", runtime) for d in project["dependencies"]]
    for extra, deps in project["optional-dependencies"].items():
        # An extra is pinned in its own lock (requirements-hf.lock) when it has one.
        lock = f"requirements-{extra}.lock"
        pins = {**runtime, **_pins(ROOT / lock)} if (ROOT / lock).exists() else runtime
        wanted += [(d, lock if (ROOT / lock).exists() else "requirements.lock", pins) for d in deps]
    for dep, lock, pins in wanted:
        name = re.split(r"[\s\[<>=!~;]", dep, maxsplit=1)[0].lower().replace("_", "-")
        assert name in pins, f"{dep} has no pin in {lock}"


def test_ci_runs_exactly_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Test"):]
    command = re.search(r"```sh\n(.+?)\n```", section, re.S)
    assert command is not None
    ci_lines = [ln for ln in (ROOT / ".ci" / "run").read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    assert ci_lines[-1] == command.group(1).strip()


def test_ci_checks_the_chromium_the_tests_use_and_python3_venv() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    conftest = (ROOT / "tests" / "browser" / "conftest.py").read_text()
    assert '"/usr/bin/chromium"' in conftest and "${SYNAPSE_CHROMIUM:-/usr/bin/chromium}" in ci
    assert "python3 -m venv" in ci and "apt_install python3-venv" in ci
