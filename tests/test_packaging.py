"""The front door: `make demo` installs only rnnkit's runtime dependencies, `make test` adds the
test extra into the same .venv, and the LICENSE is the one pyproject names.

The Makefile is read through `make -n` (what make would run, without running it), so the test
checks the commands themselves, not a copy of them.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from packaging.requirements import Requirement

tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11+")

ROOT = Path(__file__).resolve().parents[1]
# Packages only the tests need; none may reach the demo's .venv.
TEST_ONLY = {
    "pytest",
    "hypothesis",
    "ruff",
    "keras",
    "jax",
    "onnx",
    "onnxruntime",
    "triton",
    "nbclient",
    "nbformat",
    "ipykernel",
    "tensorboard",
}


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _dry_run(target: str, folder: Path = ROOT) -> list[str]:
    """The shell commands `make TARGET` would run in `folder`."""
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    # Under `make test` the parent make's flags are inherited (and would add "Entering
    # directory" lines): the dry run must read as it does from a shell.
    environment = {
        name: value
        for name, value in os.environ.items()
        if name not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")
    }
    completed = subprocess.run(
        [make, "-n", "--no-print-directory", target],
        cwd=folder,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    return completed.stdout.replace("\\\n", " ").splitlines()  # continued lines joined


def _installed(commands: list[str]) -> tuple[set[str], set[str]]:
    """What the `pip install` commands among `commands` bring: the names of the packages given
    by name, and the extras of rnnkit itself (`-e ".[test]"`)."""
    names, extras = set(), set()
    for command in commands:
        words = shlex.split(command, comments=True)
        if "pip" not in words or "install" not in words:
            continue
        for word in words[words.index("install") + 1 :]:
            if word.startswith("-"):
                continue
            if word.startswith("."):  # the project: ".", or ".[extra,...]"
                extras |= Requirement("rnnkit" + word[1:]).extras
            else:
                names.add(Requirement(word).name)
    return names, extras


def _dependency_names(commands: list[str]) -> tuple[set[str], set[str]]:
    """Every package name `commands` install (rnnkit's dependencies included), and the extras."""
    names, extras = _installed(commands)
    project = _pyproject()["project"]
    requirements = list(project["dependencies"])
    for extra in extras:
        requirements += project["optional-dependencies"][extra]
    return names | {Requirement(text).name for text in requirements}, extras


@pytest.fixture
def fresh_checkout(tmp_path):
    """The Makefile and pyproject in a folder without .venv (make's view of a new clone)."""
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


def test_make_demo_installs_no_test_only_package(fresh_checkout):
    commands = _dry_run("demo", fresh_checkout)
    names, extras = _dependency_names(commands)
    assert extras == set()
    assert "torch" in names and "numpy" in names
    assert names & TEST_ONLY == set()
    assert any("compile_kernels" in command for command in commands)  # kernels built at setup


def test_make_test_adds_the_test_extra_to_the_same_venv(fresh_checkout):
    commands = _dry_run("test", fresh_checkout)
    names, extras = _dependency_names(commands)
    assert extras == {"test"}
    assert TEST_ONLY <= names  # the list above names real test dependencies
    assert any("compile_kernels" in command for command in commands)
    assert commands[-1].endswith("-m pytest")


def test_make_test_after_make_demo_installs_only_the_difference(fresh_checkout):
    venv = fresh_checkout / ".venv"
    venv.mkdir()
    (venv / ".runtime-installed").touch()  # what `make demo` leaves (newer than the Makefile)
    commands = _dry_run("test", fresh_checkout)
    assert not any("-m venv" in command for command in commands)
    assert not any("compile_kernels" in command for command in commands)
    names, extras = _installed(commands)
    assert extras == {"test"}
    # ... and the other way round: a full setup satisfies the demo.
    (venv / ".installed").touch()
    assert not any("pip" in command for command in _dry_run("demo", fresh_checkout))


def test_the_torch_pin_is_the_same_in_both_installs(fresh_checkout):
    pins = {
        str(Requirement(word).specifier)
        for command in _dry_run("test", fresh_checkout)
        for word in shlex.split(command, comments=True)
        if word.startswith("torch")
    }
    assert len(pins) == 1 and next(iter(pins)).startswith("==")


def test_the_license_file_is_the_mit_license_pyproject_names():
    text = (ROOT / "LICENSE").read_text()
    assert _pyproject()["project"]["license"] == "MIT"
    assert text.startswith("MIT License")
    assert "Copyright (c)" in text and "rnnkit contributors" in text
    assert 'THE SOFTWARE IS PROVIDED "AS IS"' in text
