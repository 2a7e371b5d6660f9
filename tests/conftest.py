"""Shared fixtures: an isolated home, the rehearsal GPU host (real sshd), and a fresh project root.

Tiers: a test is marked ``integration`` here when it uses the rehearsal host, directly or through another
fixture (``project``, ``cfg``, ``ssh``, ``local`` ...), and ``slow`` when its module encodes real video, so
new tests are classified without anyone remembering. ``make test-fast`` runs the rest
(``-m "not integration and not slow"``); ``make test`` runs everything.
"""

from __future__ import annotations

import shutil

import pytest

from cosmos_tools import transport
from cosmos_tools.config import load_config
from cosmos_tools.rehearsal.host import HostInfo, down, up

# The fixtures below that start (or share) the rehearsal host; a test may also ask for one by name at run time
# (request.getfixturevalue(kind) with kind parametrized), which the fixture closure does not show.
HOST_FIXTURES = {"rehearsal_host", "project", "cfg", "ssh", "local"}
# The rehearsal host with a real Slurm behind it (BACKEND=slurm), and a project wired to it.
SLURM_FIXTURES = {"slurm_host", "slurm_project"}
# Tests that start a rehearsal host of their own (not through the fixture), in files that do not mark them yet.
STARTS_ITS_OWN_HOST = {"test_rehearsal.py::test_up_status_down_through_the_cli"}
# Modules whose tests encode real video with ffmpeg (1-7 s each, about two thirds of the unit tier's CPU time).
SLOW_MODULES = {"test_convert.py", "test_review.py", "test_review_browser.py"}  # real ffmpeg encodes, a real browser


def uses_rehearsal_host(item) -> bool:
    """True when the test needs the rehearsal host: through its fixtures, by a fixture name it is given, or by name."""
    fixtures = getattr(item, "fixturenames", ())
    own_host = f"{item.path.name}::{getattr(item, 'originalname', item.name)}" in STARTS_ITS_OWN_HOST
    if own_host or "rehearsal_host" in fixtures or SLURM_FIXTURES & set(fixtures):
        return True
    params = getattr(item, "callspec", None)
    return "request" in fixtures and params is not None and any(
        isinstance(value, str) and value in HOST_FIXTURES for value in params.params.values())


def pytest_collection_modifyitems(items):
    for item in items:
        if uses_rehearsal_host(item):
            item.add_marker(pytest.mark.integration)
        elif item.path.name in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch):
    """Keep every test away from the developer's real home, config and SSH agent."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    for name in ("COSMOS_CONFIG", "COSMOS_PROJECT_ROOT", "SSH_AUTH_SOCK", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture(scope="session")
def rehearsal_host(tmp_path_factory) -> HostInfo:
    """One rehearsal host for the session, in a folder whose path has a space and a quote."""
    folder = tmp_path_factory.mktemp("rehearsal") / "gpu box 'r1'"
    info = up(folder, seconds=0.3)
    yield info
    down(folder)


@pytest.fixture(scope="session")
def slurm_host(tmp_path_factory) -> HostInfo:
    """One rehearsal host with its Slurm (4 stand-in GPUs) for the session; slurm.conf cannot hold a path with a
    space, so its folder is plain (the job folders still get hostile names)."""
    folder = tmp_path_factory.mktemp("slurm") / "cluster"
    info = up(folder, seconds=0.3, slurm=True)
    yield info
    down(folder)


def _project_for(host, tmp_path, monkeypatch):
    """A fresh project root wired to ``host`` (COSMOS_PROJECT_ROOT and COSMOS_CONFIG set)."""
    root = tmp_path / "project é"
    for sub in ("inputs/videos", "inputs/prompts", "outputs", "notes"):
        (root / sub).mkdir(parents=True)
    shutil.copyfile(host.config, root / "config.sh")
    monkeypatch.setenv("COSMOS_PROJECT_ROOT", str(root))
    monkeypatch.setenv("COSMOS_CONFIG", str(root / "config.sh"))
    return root


@pytest.fixture
def slurm_project(tmp_path, slurm_host, monkeypatch):
    """A fresh project root wired to the Slurm rehearsal host."""
    return _project_for(slurm_host, tmp_path, monkeypatch)


@pytest.fixture
def project(tmp_path, rehearsal_host, monkeypatch):
    """A fresh project root wired to the rehearsal host (COSMOS_PROJECT_ROOT and COSMOS_CONFIG set)."""
    return _project_for(rehearsal_host, tmp_path, monkeypatch)


@pytest.fixture
def cfg(project):
    """The project's effective config (the rehearsal host's)."""
    return load_config(project)


@pytest.fixture
def ssh(cfg):
    """One open connection to the rehearsal host."""
    with transport.connect(cfg) as t:
        yield t


@pytest.fixture
def local(project, tmp_path, monkeypatch):
    """A local transport (TRANSPORT=local) whose REMOTE_DIR has a hostile name."""
    remote = tmp_path / "box dir $(x)"
    remote.mkdir()
    monkeypatch.setenv("TRANSPORT", "local")
    monkeypatch.setenv("REMOTE_DIR", str(remote))
    with transport.connect(load_config(project)) as t:
        yield t
