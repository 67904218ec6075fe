"""requirements.lock: exact pins inside requirements.txt's ranges, markers where only some platforms need a package,
and every set-up path installs it (utils/course/lockfile.py)."""

import re
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from utils.course import lockfile

ROOT = Path(__file__).resolve().parents[1]
LOCK = {canonicalize_name(req.name): req for req in map(Requirement, lockfile.lines(ROOT / "requirements.lock"))}
LINUX, MAC, WINDOWS = (lockfile.environment(*p) for p in [("linux", "x86_64"), ("darwin", "arm64"), ("win32", "AMD64")])


def test_the_lock_pins_exact_versions():
    for req in LOCK.values():
        (spec,) = req.specifier
        assert spec.operator == "==" and "*" not in spec.version, req
        assert req.marker is None or req.marker.evaluate(LINUX), f"{req}: CI (Linux x86_64) installs every pin"
    assert lockfile.pins(ROOT / "requirements.lock")["torch"] == "2.14.1"
    assert lockfile.pins(ROOT / "requirements.lock")["torchvision"] == "0.29.1"


def test_every_requirement_is_pinned_inside_its_range():
    for req in map(Requirement, lockfile.lines(ROOT / "requirements.txt")):
        pin = LOCK.get(canonicalize_name(req.name))
        assert pin is not None, f"{req.name} is not in requirements.lock"
        assert pin.marker is None, f"{pin}: a direct requirement is needed everywhere"
        (version,) = (spec.version for spec in pin.specifier)
        assert req.specifier.contains(version, prereleases=True), f"{pin} is outside {req}"


def test_cuda_packages_are_pinned_for_linux_only():
    cuda = [req for name, req in LOCK.items() if name.startswith(("nvidia-", "cuda-")) or name == "triton"]
    assert cuda, "torch's Linux wheels pull in CUDA libraries"
    for req in cuda:
        assert req.marker is not None and req.marker.evaluate(LINUX), req
        assert not req.marker.evaluate(MAC) and not req.marker.evaluate(WINDOWS), req


def test_markers_follow_the_dependency_graph():
    requires = {"app": ["lib ; sys_platform == 'linux'", "tool[gpu]", "pty ; os_name != 'nt'"], "lib": [],
                "tool": ["cudalib ; extra == 'gpu' and platform_machine == 'x86_64'", "docs ; extra == 'doc'"],
                "cudalib": [], "docs": [], "pty": []}
    on = {p: lockfile.needed([Requirement("app")], requires, lockfile.environment(*p)) for p in lockfile.PLATFORMS}
    assert not any("docs" in names for names in on.values()), "an extra nobody asks for is not followed"
    where = {name: lockfile.marker({p for p in on if name in on[p]}) for name in on[("linux", "x86_64")]}
    assert where == {"app": None, "tool": None, "lib": 'sys_platform == "linux"',
                     "cudalib": 'sys_platform == "linux" and platform_machine == "x86_64"',
                     "pty": 'sys_platform != "win32"'}


def test_every_setup_path_installs_the_lock():
    stamp = re.search(r"^\$\(STAMP\):(.*)\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(), re.M)
    assert "requirements.lock" in stamp[1].split(), "the .venv is reinstalled when the lock changes"
    assert "-r requirements.lock" in stamp[2]
    conda = (ROOT / "environment.yml").read_text()
    assert "-r requirements.lock" in conda and "-r requirements.txt" not in conda
