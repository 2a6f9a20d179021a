"""What a Procfile platform builds agrees with the code: requirements.txt,
.python-version and app.json.

When a requirements test fails, run ``python3 dev.py lock`` and commit
requirements.txt. (tests/integration/test_first_run.py installs the file into a
fresh venv and starts every Procfile process from it.)
"""

from __future__ import annotations

import json
import re
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from app.config import ConfigError, Settings

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
PIN = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!-]+)")


def _lines() -> list[str]:
    text = (ROOT / "requirements.txt").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip() and
            not line.lstrip().startswith("#")]


def _pins() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in _lines()[:-1]:
        match = PIN.fullmatch(line)
        assert match, f"requirements.txt: {line!r} is not name==version"
        name = canonicalize_name(match[1])
        assert name not in pins, f"requirements.txt pins {name} twice"
        pins[name] = Version(match[2])
    return pins


def _runtime_requirements() -> list[Requirement]:
    return [Requirement(text) for text in PYPROJECT["dependencies"]]


def test_every_line_is_a_pin_and_the_project_comes_last():
    lines = _lines()
    assert lines[-1] == "-e ."  # installs the project: the smsgw command on the platform
    assert len(_pins()) == len(lines) - 1


def test_every_runtime_dependency_is_pinned_inside_its_pyproject_range():
    pins = _pins()
    for requirement in _runtime_requirements():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is in pyproject.toml but not pinned: python3 dev.py lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), \
            f"{name}=={pins[name]} is outside pyproject.toml's {requirement}: python3 dev.py lock"


def test_the_pins_are_the_runtime_closure_and_nothing_else():
    """Names only: every pin is needed, and whatever a pinned package needs is pinned."""
    needed = _closure(_runtime_requirements())
    pinned = set(_pins())
    assert not needed - pinned, f"needed but not pinned: {sorted(needed - pinned)}"
    assert not pinned - needed, f"pinned but never needed: {sorted(pinned - needed)}"


def test_no_development_tool_is_deployed():
    dev_only = {canonicalize_name(Requirement(text).name)
                for extra in PYPROJECT["optional-dependencies"].values() for text in extra}
    runtime = {canonicalize_name(r.name) for r in _runtime_requirements()}
    leaked = (dev_only - runtime) & set(_pins())
    assert not leaked, f"development tools in requirements.txt: {sorted(leaked)}"


def test_python_version_pin_is_a_supported_minor_release_the_project_accepts():
    text = (ROOT / ".python-version").read_text(encoding="utf-8").strip()
    # The buildpack accepts "3.X" (newest patch, security updates) or "3.X.Y".
    assert re.fullmatch(r"3\.\d{2}", text), text
    assert SpecifierSet(PYPROJECT["requires-python"]).contains(f"{text}.0")
    assert not (ROOT / "runtime.txt").exists()  # deprecated, and it would take precedence


# -- app.json (Heroku's manifest: add-on, formation, variables) --------------------------

APP = json.loads((ROOT / "app.json").read_text(encoding="utf-8"))
# Plausible values for the variables app.json asks the deployer for.
SAMPLE = {"PUBLIC_BASE_URL": "https://gw.example.com", "CXONE_CLIENT_ID": "id",
          "CXONE_CLIENT_SECRET": "secret", "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
          "TWILIO_AUTH_TOKEN": "token", "TWILIO_MESSAGING_SERVICE_SID": "MG" + "0" * 32}


def test_app_json_runs_every_long_running_procfile_process_on_postgres():
    procfile = {line.split(":", 1)[0] for line in
                (ROOT / "Procfile").read_text().splitlines() if line.strip()}
    assert set(APP["formation"]) == procfile - {"release"}  # release runs on every deploy
    assert all(spec["quantity"] >= 1 for spec in APP["formation"].values())
    assert any(a["plan"].startswith("heroku-postgresql") for a in APP["addons"])
    assert APP["buildpacks"] == [{"url": "heroku/python"}]
    assert len(APP["name"]) <= 30 and len(APP["description"]) <= 140


def test_app_json_asks_for_exactly_what_the_gateway_requires():
    env = APP["env"]
    required = sorted(name for name, spec in env.items() if spec.get("required", True))
    assert not set(required) - set(SAMPLE), "give the new variable a sample value here"
    values = {name: spec["value"] for name, spec in env.items() if "value" in spec}
    Settings.from_env({**values, **SAMPLE})  # everything else has a working default
    for name in required:
        try:
            Settings.from_env({**values, **{k: v for k, v in SAMPLE.items() if k != name}})
        except ConfigError as exc:
            assert exc.variable == name
        else:
            raise AssertionError(f"app.json marks {name} required but the gateway runs without")


def test_app_json_variables_are_documented_and_described():
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    for name, spec in APP["env"].items():
        assert re.search(rf"^#?{name}=", example, re.MULTILINE), f"{name} not in .env.example"
        assert len(spec["description"]) > 20, name


def _closure(roots: list[Requirement]) -> set[str]:
    """Names of ``roots`` and everything they need, read from the installed metadata."""
    names: set[str] = set()
    todo = [(canonicalize_name(r.name), frozenset(r.extras)) for r in roots]
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        name, extras = todo.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        names.add(name)
        try:
            requires = metadata.distribution(name).requires or []
        except metadata.PackageNotFoundError:
            raise AssertionError(f"{name} is not installed here; run python3 dev.py test") from None
        for text in requires:
            requirement = Requirement(text)
            wanted = requirement.marker is None or any(
                requirement.marker.evaluate({"extra": extra}) for extra in {"", *extras})
            if wanted:
                todo.append((canonicalize_name(requirement.name),
                             frozenset(requirement.extras)))
    return names
