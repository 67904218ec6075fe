"""``requirements.lock``: every package installed from ``requirements.txt``, at its exact version.

    python -m utils.course.lockfile [--requirements requirements.txt] [--output requirements.lock]

Run it with the Python of the environment to lock (``make lock`` makes a fresh one from requirements.txt's
ranges): the versions and the dependency graph are read from that environment's installed packages. A package
that only some platforms need — torch's CUDA libraries and triton: Linux — gets a marker naming them, found by
walking the graph from requirements.txt once with each platform's marker values.
"""

from __future__ import annotations

import argparse
import platform
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO_ROOT = Path(__file__).resolve().parents[2]
# sys_platform → (platform_system, os_name); and the (sys_platform, platform_machine) pairs torch has wheels for.
_SYSTEMS = {"linux": ("Linux", "posix"), "darwin": ("Darwin", "posix"), "win32": ("Windows", "nt")}
PLATFORMS = (("linux", "x86_64"), ("linux", "aarch64"), ("darwin", "arm64"), ("win32", "AMD64"))
HEADER = """\
# The exact versions the course's tests last passed with: what `make lab` and `make test` install.
# requirements.txt keeps the ranges. Refresh with `make lock`: it installs the newest versions within those ranges
# into a throwaway environment, writes this file from it (python -m utils.course.lockfile), reinstalls .venv from it and
# runs every test; commit the new lock once they pass. Resolved on Python {python}, {platform}; a marker names the
# platforms that need a package. Packages only other platforms need (e.g. colorama on Windows) are not pinned.
"""


def lines(path: Path) -> list[str]:
    """The requirement lines of a requirements file, without comments and blank lines."""
    return [line for line in (raw.split("#")[0].strip() for raw in path.read_text().splitlines()) if line]


def pins(path: Path = REPO_ROOT / "requirements.lock") -> dict[str, str]:
    """A lock's pinned version of each package, by canonical name."""
    return {canonicalize_name(req.name): next(iter(req.specifier)).version
            for req in map(Requirement, lines(path))}


def environment(sys_platform: str, machine: str) -> dict[str, str]:
    """The marker values on that platform (this Python's version and implementation)."""
    system, os_name = _SYSTEMS[sys_platform]
    return default_environment() | {"sys_platform": sys_platform, "platform_system": system, "os_name": os_name,
                                    "platform_machine": machine}


def needed(roots: list[Requirement], requires: dict[str, list[str]], env: dict[str, str]) -> set[str]:
    """The installed packages (canonical names) that ``roots`` need under the marker values ``env``;
    ``requires``: each installed package's Requires-Dist lines."""
    extras_of: dict[str, set[str]] = {}  # package reached → the extras asked of it
    todo = [req for req in roots if req.marker is None or req.marker.evaluate(env)]
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if name not in requires or (name in extras_of and req.extras <= extras_of[name]):
            continue  # not installed here (another platform's), or already walked with these extras
        extras = extras_of[name] = extras_of.get(name, set()) | req.extras
        for line in requires[name]:
            dep = Requirement(line)
            if dep.marker is None or any(dep.marker.evaluate(env | {"extra": e}) for e in extras | {""}):
                todo.append(dep)
    return set(extras_of)


def marker(platforms: set[tuple[str, str]]) -> str | None:
    """A marker true on exactly these of `PLATFORMS` (None when it is all of them)."""
    if platforms >= set(PLATFORMS):
        return None
    whole = [s for s in _SYSTEMS if all(p in platforms for p in PLATFORMS if p[0] == s)]
    if len(whole) == len(_SYSTEMS) - 1 and all(p[0] in whole for p in platforms):
        return f'sys_platform != "{(_SYSTEMS.keys() - whole).pop()}"'
    terms = [f'sys_platform == "{s}"' for s in whole] + [  # `and` binds tighter than `or`: no brackets needed
        f'sys_platform == "{s}" and platform_machine == "{m}"' for s, m in sorted(platforms) if s not in whole]
    return " or ".join(terms) or None


def lock(requirements: Path) -> str:
    """The lock file's text for this environment."""
    roots = [Requirement(line) for line in lines(requirements)]
    dists: dict[str, metadata.Distribution] = {}
    for dist in metadata.distributions():
        dists.setdefault(canonicalize_name(dist.metadata["Name"]), dist)  # the first on sys.path wins, as on import
    requires = {name: dist.requires or [] for name, dist in dists.items()}
    on = {p: needed(roots, requires, environment(*p)) for p in PLATFORMS}
    pinned = []
    for name in sorted(needed(roots, requires, default_environment())):
        where = marker({p for p in PLATFORMS if name in on[p]})
        pinned.append(f"{dists[name].metadata['Name']}=={dists[name].version}" + (f" ; {where}" if where else ""))
    here = f"{platform.system().lower()} {platform.machine()}"
    return HEADER.format(python=".".join(platform.python_version_tuple()[:2]), platform=here) + "\n".join(pinned) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requirements", type=Path, default=REPO_ROOT / "requirements.txt")
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "requirements.lock")
    args = parser.parse_args()
    args.output.write_text(lock(args.requirements))  # written whole at the end: a failure leaves the old lock
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
