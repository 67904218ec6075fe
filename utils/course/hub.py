"""`make workshop`: the course served to a room by JupyterHub from one machine, and the same settings past one
machine as a Zero to JupyterHub (Kubernetes) deployment (issue 27). `SHARED` is the one source of the values both
use — limits, culling, GPU sharing, the profile, where the shared checkpoints and the learners' records live — so
the two cannot drift (tests/test_hub.py parses both and compares).

    python -m utils.course.hub config --learners "ada grace" --instructor ines [--roster FILE] [--port 8000]
        [--ip 127.0.0.1] [--gpus 0] [--state DIR]  # DIR/hub/jupyterhub_config.py, and beside it a cookie secret
                                                   # and a proxy token (0600), made once, never in the repository
    python -m utils.course.hub check               # what `make workshop` lacks here (packages, the proxy, root)
    python -m utils.course.hub deploy              # utils/course/deploy/config.yaml and Dockerfile from SHARED

The local hub (`make workshop`, run as root: one system user per learner, as The Littlest JupyterHub isolates them):

- learners choose their password at first login (FirstUseAuthenticator); only the roster may sign in; the
  instructor is the admin. A roster file holds one learner a line, optionally with a profile: ``ada cpu``.
- `prepare_learner`, the spawner's pre-spawn hook, creates the learner's system user and, on the first spawn,
  their copy of the chapters and of the exercise notebooks (never over their edits); their exercise folder — the
  record the progress board reads — is ``<state>/progress/<learner>``, readable by the instructor's group only;
  the instructor's pre-trained checkpoints are linked file by file into the learner's own ``data/checkpoints``:
  read-only to them, and a learner who retrains replaces the link by their own file, never the shared one.
- each server gets ``COURSE_PROFILE`` (the roster's, else SHARED's), ``COURSE_LEARNER``, its memory and CPU limits
  (enforced by spawners that can, such as SystemdSpawner; LocalProcessSpawner passes them as MEM_LIMIT/CPU_LIMIT and
  the thread count follows the CPU limit), and with ``--gpus N`` one GPU by ``CUDA_VISIBLE_DEVICES``,
  ``learners_per_gpu`` learners on each; idle servers are stopped by the jupyterhub-idle-culler service.
"""

from __future__ import annotations

import argparse
import functools
import grp
import json
import os
import pwd
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = Path(__file__).resolve().parent / "deploy"
# The values the local hub and the Zero to JupyterHub deployment share: change them here, then `python -m
# utils.course.hub deploy` rewrites utils/course/deploy/ (tests/test_hub.py fails until it does).
SHARED = {
    "memory_limit": "3G",            # a cpu-profile chapter's peak is about 2 GB (see INSTRUCTORS.md)
    "cpu_limit": 1.0,
    "cull_idle_seconds": 3600,       # a learner's server idle for an hour is stopped (their files stay)
    "cull_every_seconds": 300,
    "learners_per_gpu": 4,
    "default_profile": "cpu",
    "image": "deep-vision-lab",
    "checkpoints_path": "/srv/deep-vision-lab/checkpoints",   # the instructor's `make verify` checkpoints, read-only
    "progress_path": "/srv/deep-vision-lab/progress",         # one folder per learner: their exercise folder
}
PROFILES = ("smoke", "cpu", "gpu")
# module → package, all three in requirements.txt
HUB_PACKAGES = {"jupyterhub": "jupyterhub", "firstuseauthenticator": "jupyterhub-firstuseauthenticator",
                "jupyterhub_idle_culler": "jupyterhub-idle-culler"}
LEARNER_NAME = re.compile(r"[a-z_][a-z0-9_-]{0,31}")        # what useradd accepts as a system user name
SECRET_FILES = ("cookie_secret", "proxy_token")
# JupyterHub's proxy, installed by the Makefile's set-up from npm into the course's .venv (PROXY_VERSION there too)
PROXY_VERSION = "5.3.0"
PROXY = ROOT / ".venv" / "node" / "node_modules" / ".bin" / "configurable-http-proxy"


# ------------------------------------------------------------------------------------------------ the room
def read_roster(text: str, default_profile: str = SHARED["default_profile"]) -> dict[str, str]:
    """Learner → profile from a roster's text: one learner a line, ``name [profile]``; ``#`` starts a comment."""
    learners = {}
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        if len(fields) > 2 or not LEARNER_NAME.fullmatch(fields[0]) or fields[1:] and fields[1] not in PROFILES:
            raise ValueError(f"roster line {number}, {line.strip()!r}: write `name [profile]`, the name a system "
                             f"user name (lowercase letters, digits, - and _), the profile one of {PROFILES}")
        if fields[0] in learners:
            raise ValueError(f"roster line {number}: {fields[0]} is listed twice")
        learners[fields[0]] = fields[1] if len(fields) > 1 else default_profile
    if not learners:
        raise ValueError("the roster names no learner: give LEARNERS=\"ada grace\" or a roster file, one a line")
    return learners


def gpu_for(learner: str, learners: dict[str, str], gpus: int, per_gpu: int = SHARED["learners_per_gpu"]) -> str:
    """The CUDA_VISIBLE_DEVICES of ``learner``: the roster's first ``per_gpu`` learners on GPU 0, the next on GPU 1
    …, round again when there are more learners than places (the instructor, not in the roster, on GPU 0); ""
    (no GPU) when the machine has none."""
    if gpus <= 0:
        return ""
    return str(list(learners).index(learner) // per_gpu % gpus if learner in learners else 0)


def hub_settings(learners: dict[str, str], instructor: str, *, port: int = 8000, ip: str = "127.0.0.1",
                 gpus: int = 0, state: Path, group: str, hub_api_port: int = 8081, proxy_api_port: int = 8001,
                 home_base: Path | None = None) -> dict:
    """Everything the generated jupyterhub_config.py needs, as plain JSON values. ``hub_api_port`` and
    ``proxy_api_port`` (JupyterHub's defaults) listen on 127.0.0.1 only; ``home_base``: where the learners' homes
    are made (default: useradd's, /home)."""
    if not LEARNER_NAME.fullmatch(instructor):
        raise ValueError(f"instructor must be a system user name (lowercase letters, digits, - and _), got "
                         f"{instructor!r}")
    if instructor in learners:
        raise ValueError(f"{instructor} is the instructor: leave them out of the learners")
    ports = (port, hub_api_port, proxy_api_port)
    if not all(0 < number < 65536 for number in ports) or len(set(ports)) < 3 or gpus < 0:
        raise ValueError(f"the ports must be three different numbers in 1–65535 and gpus ≥ 0, got ports {ports}, "
                         f"gpus={gpus}")
    return {**SHARED, "learners": learners, "instructor": instructor, "port": port, "ip": ip, "gpus": gpus,
            "hub_path": str(state / "hub"), "group": group, "course": str(ROOT),
            "progress_path": str(state / "progress"), "checkpoints_path": str(ROOT / "data" / "checkpoints"),
            "exercise_template": str(state / "exercise-template"), "proxy": str(PROXY),
            "hub_api_port": hub_api_port, "proxy_api_port": proxy_api_port,
            "home_base": None if home_base is None else str(home_base),
            "singleuser": [str(ROOT / ".venv" / "bin" / "jupyterhub-singleuser")]}


# --------------------------------------------------------------------------------- the generated config
CONFIG_TEMPLATE = '''# Generated by `make workshop` (python -m utils.course.hub config): change utils/course/hub.py
# or the make variables, not this file. The cookie secret and the proxy token are the files beside it,
# never in the repository.
import json

from utils.course.hub import configure

configure(c, json.loads({settings!r}))
'''


def write_config(settings: dict) -> Path:
    """Write ``<state>/hub/jupyterhub_config.py`` and, once, the secrets beside it (mode 0600); return the config.
    The hub's folder is the hub's alone (0700): the passwords and the database go there too."""
    hub_path = Path(settings["hub_path"])
    hub_path.mkdir(parents=True, exist_ok=True)
    hub_path.chmod(0o700)
    for name in SECRET_FILES:
        secret = hub_path / name
        if not secret.exists():
            descriptor = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as file:
                file.write(secrets.token_hex(32))
    config = hub_path / "jupyterhub_config.py"
    # the roster's order kept: it decides who shares which GPU
    config.write_text(CONFIG_TEMPLATE.format(settings=json.dumps(settings)), encoding="utf-8")
    return config


def configure(c, settings: dict) -> None:
    """Fill JupyterHub's config object ``c`` from ``settings`` (what `hub_settings` returns)."""
    hub_path, course = Path(settings["hub_path"]), Path(settings["course"])
    c.JupyterHub.ip, c.JupyterHub.port = settings["ip"], settings["port"]
    c.JupyterHub.hub_ip, c.JupyterHub.hub_port = "127.0.0.1", settings["hub_api_port"]
    c.ConfigurableHTTPProxy.command = [settings["proxy"]]
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{settings['proxy_api_port']}"
    c.ConfigurableHTTPProxy.pid_file = str(hub_path / "proxy.pid")    # not the working folder's
    c.JupyterHub.cookie_secret_file = str(hub_path / "cookie_secret")
    c.ConfigurableHTTPProxy.auth_token = (hub_path / "proxy_token").read_text().strip()
    c.JupyterHub.db_url = f"sqlite:///{hub_path / 'jupyterhub.sqlite'}"
    c.JupyterHub.authenticator_class = "firstuseauthenticator.FirstUseAuthenticator"
    c.FirstUseAuthenticator.dbm_path = str(hub_path / "passwords.dbm")
    c.FirstUseAuthenticator.create_users = False              # only the roster signs in
    c.FirstUseAuthenticator.min_password_length = 8
    c.Authenticator.allowed_users = set(settings["learners"])
    c.Authenticator.admin_users = {settings["instructor"]}
    c.JupyterHub.spawner_class = "jupyterhub.spawner.LocalProcessSpawner"
    c.Spawner.cmd = settings["singleuser"]
    c.Spawner.default_url = "/lab"
    c.Spawner.notebook_dir = "~"
    c.Spawner.mem_limit = settings["memory_limit"]
    c.Spawner.cpu_limit = settings["cpu_limit"]
    c.Spawner.pre_spawn_hook = lambda spawner: prepare_learner(spawner, settings)
    # JupyterHub calls a callable value with the spawner: each learner's own value
    c.Spawner.environment = {name: functools.partial(_environment_value, name, settings)
                             for name in LEARNER_ENVIRONMENT}
    c.JupyterHub.services = [{"name": "idle-culler", "command": [
        sys.executable, "-m", "jupyterhub_idle_culler", f"--timeout={settings['cull_idle_seconds']}",
        f"--cull-every={settings['cull_every_seconds']}"]}]
    c.JupyterHub.load_roles = [{"name": "idle-culler", "services": ["idle-culler"],
                                "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"]}]


LEARNER_ENVIRONMENT = ("COURSE_LEARNER", "COURSE_PROFILE", "COURSE_EXERCISES_DIR", "COURSE_DATA_DIR",
                       "COURSE_OUTPUTS", "CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS")


def _environment_value(name: str, settings: dict, spawner) -> str:
    return learner_environment(spawner.user.name, settings)[name]


def learner_environment(learner: str, settings: dict) -> dict[str, str]:
    """The environment of ``learner``'s server (the home is the spawner's: the learner's system user's)."""
    return {"COURSE_LEARNER": learner,
            "COURSE_PROFILE": settings["learners"].get(learner, settings["default_profile"]),
            "COURSE_EXERCISES_DIR": str(Path(settings["progress_path"]) / learner),
            "COURSE_DATA_DIR": str(Path(os.path.expanduser(f"~{learner}")) / "data"),
            "COURSE_OUTPUTS": str(Path(os.path.expanduser(f"~{learner}")) / "outputs"),  # the course's is read-only
            "CUDA_VISIBLE_DEVICES": gpu_for(learner, settings["learners"], settings["gpus"],
                                            settings["learners_per_gpu"]),
            "OMP_NUM_THREADS": str(max(1, int(settings["cpu_limit"])))}


# --------------------------------------------------------------------------------- a learner's first spawn
def prepare_home(home: Path, exercise_folder: Path, settings: dict) -> list[Path]:
    """Give ``home`` what a learner's server needs, keeping whatever is already there (their edits): the chapters'
    notebooks, a link ``exercises`` to their exercise folder holding the exercise notebooks, the shared data and
    each shared checkpoint linked into ``data/``. Return the paths made (for `prepare_learner` to hand to the
    learner)."""
    course, made = Path(settings["course"]), []

    def copy(source: Path, target: Path):
        if not target.exists() and not target.is_symlink():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
            made.append(target)

    def link(source: Path, target: Path):
        if not target.exists() and not target.is_symlink():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(source)
            made.append(target)

    for notebook in sorted((course / "chapters").glob("*.ipynb")):
        copy(notebook, home / "chapters" / notebook.name)
    for notebook in sorted(Path(settings["exercise_template"]).glob("*.ipynb")):
        copy(notebook, exercise_folder / notebook.name)
    link(exercise_folder, home / "exercises")
    shared_data = course / "data"
    for entry in sorted(shared_data.iterdir()) if shared_data.is_dir() else []:
        if entry.name != "checkpoints":
            link(entry, home / "data" / entry.name)
    shared = Path(settings["checkpoints_path"])
    for checkpoint in sorted(shared.glob("*/*.pt")):
        link(checkpoint, home / "data" / "checkpoints" / checkpoint.parent.name / checkpoint.name)
    return made


def ensure_system_user(learner: str, home_base: str | None = None) -> pwd.struct_passwd:
    """The learner's system user, created (with a home, under ``home_base`` if given, no password: they sign in
    through the hub) if missing."""
    try:
        return pwd.getpwnam(learner)
    except KeyError:
        if os.geteuid() != 0:
            raise PermissionError(f"no system user {learner}, and only root can create one: start the hub with "
                                  f"`sudo make workshop …`") from None
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", learner,
                        *(["--base-dir", home_base] if home_base else [])], check=True)
        return pwd.getpwnam(learner)


def prepare_learner(spawner, settings: dict) -> None:
    """The pre-spawn hook: the learner's system user, their exercise folder (theirs, readable by the instructor's
    group for the board, by no other learner) and their home (`prepare_home`), everything made handed to them."""
    learner = spawner.user.name
    user = ensure_system_user(learner, settings.get("home_base"))
    group = grp.getgrnam(settings["group"]).gr_gid
    progress = Path(settings["progress_path"])
    progress.mkdir(parents=True, exist_ok=True)
    progress.chmod(0o711)                          # each learner reaches their own folder, lists no one's
    exercise_folder = progress / learner
    exercise_folder.mkdir(exist_ok=True)
    os.chown(exercise_folder, user.pw_uid, group)
    exercise_folder.chmod(0o2750)                  # setgid: the record written inside keeps the instructor's group
    home = Path(user.pw_dir)
    home.chmod(0o700)                              # some useradd defaults leave a home readable by every user
    for path in prepare_home(home, exercise_folder, settings):
        for made in [path, *(p for p in path.parents if home in p.parents)]:
            os.chown(made, user.pw_uid, group if made.is_relative_to(exercise_folder) else user.pw_gid,
                     follow_symlinks=False)


# ----------------------------------------------------------------------------- past one machine: utils/course/deploy/
def z2jh_config() -> dict:
    """The Zero to JupyterHub chart's values for the course image, with SHARED's limits, culling, profile, GPU
    sharing, read-only checkpoints and per-learner record folder."""
    return {
        "hub": {"config": {"JupyterHub": {"authenticator_class": "firstuseauthenticator.FirstUseAuthenticator"},
                           "FirstUseAuthenticator": {"create_users": False, "min_password_length": 8}}},
        "singleuser": {
            "image": {"name": SHARED["image"], "tag": "latest"},
            "defaultUrl": "/lab",
            "memory": {"limit": SHARED["memory_limit"]},
            "cpu": {"limit": SHARED["cpu_limit"]},
            "extraEnv": {"COURSE_PROFILE": SHARED["default_profile"],
                         "COURSE_EXERCISES_DIR": SHARED["progress_path"],
                         "COURSE_DATA_DIR": "/home/jovyan/data",
                         "COURSE_OUTPUTS": "/home/jovyan/outputs",
                         "OMP_NUM_THREADS": str(max(1, int(SHARED["cpu_limit"])))},
            "storage": {
                "extraVolumes": [
                    {"name": "checkpoints", "persistentVolumeClaim": {"claimName": "deep-vision-lab-checkpoints",
                                                                      "readOnly": True}},
                    {"name": "progress", "persistentVolumeClaim": {"claimName": "deep-vision-lab-progress"}}],
                "extraVolumeMounts": [
                    {"name": "checkpoints", "mountPath": SHARED["checkpoints_path"], "readOnly": True},
                    {"name": "progress", "mountPath": SHARED["progress_path"], "subPath": "{username}"}]},
            "lifecycleHooks": {"postStart": {"exec": {"command": [
                "/opt/deep-vision-lab/.venv/bin/python", "-m", "utils.course.hub", "first-start"]}}},
            # with the NVIDIA device plugin's time-slicing set to learners_per_gpu replicas per GPU
            "extraResource": {"limits": {"nvidia.com/gpu": "1"}},
        },
        "cull": {"enabled": True, "timeout": SHARED["cull_idle_seconds"], "every": SHARED["cull_every_seconds"]},
        "custom": {"learners_per_gpu": SHARED["learners_per_gpu"]},
    }


DOCKERFILE = f"""# Generated by `python -m utils.course.hub deploy` from utils/course/hub.py: the course image for
# Zero to JupyterHub (utils/course/deploy/config.yaml). Build it from the repository root:
#   docker build -f utils/course/deploy/Dockerfile -t {SHARED['image']} .
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends make git && rm -rf /var/lib/apt/lists/*
RUN useradd --create-home --uid 1000 jovyan
COPY --chown=jovyan . /opt/deep-vision-lab
WORKDIR /opt/deep-vision-lab
USER jovyan
# The same set-up as `make lab` and `make exercises` on one machine.
RUN make .venv/.installed data notebooks && COURSE_EXERCISES_DIR=/opt/deep-vision-lab/exercise-template make exercises
ENV PATH=/opt/deep-vision-lab/.venv/bin:$PATH COURSE_PROFILE={SHARED['default_profile']}
CMD ["jupyterhub-singleuser"]
"""


def first_start() -> None:
    """In a Zero to JupyterHub pod (the postStart hook): `prepare_home` for the pod's user, with the image's
    course and the mounted checkpoints and record folder."""
    course = Path("/opt/deep-vision-lab")
    settings = {**SHARED, "course": str(course), "exercise_template": str(course / "exercise-template")}
    prepare_home(Path.home(), Path(SHARED["progress_path"]), settings)


def write_deploy() -> list[Path]:
    import yaml   # here: only `deploy` writes YAML

    DEPLOY.mkdir(exist_ok=True)
    config = DEPLOY / "config.yaml"
    config.write_text("# Generated by `python -m utils.course.hub deploy` from utils/course/hub.py's SHARED.\n"
                      + yaml.safe_dump(z2jh_config(), sort_keys=False), encoding="utf-8")
    dockerfile = DEPLOY / "Dockerfile"
    dockerfile.write_text(DOCKERFILE, encoding="utf-8")
    return [config, dockerfile]


def closed_to_others(path: Path) -> Path | None:
    """The first folder on the way to ``path`` (links followed) that other users cannot enter, or ``path`` itself
    if they cannot read and run it; None when every user can run it — as each learner's server must run the
    course's Python."""
    real = path.resolve()
    for folder in reversed(real.parents):
        if not folder.stat().st_mode & 0o001:
            return folder
    return None if real.stat().st_mode & 0o005 == 0o005 else real


def missing_tools() -> list[str]:
    """What `make workshop` needs and this machine lacks, each with how to get it; [] when all is there."""
    import importlib.util

    missing = [f"{package}: {ROOT / '.venv/bin/pip'} install -r {ROOT / 'requirements.lock'} (the set-up's pins)"
               for module, package in HUB_PACKAGES.items() if importlib.util.find_spec(module) is None]
    if not PROXY.exists():
        missing.append(f"configurable-http-proxy: npm install --prefix {ROOT / '.venv' / 'node'} "
                       f"configurable-http-proxy@{PROXY_VERSION} (what the set-up, make .venv/.installed, runs "
                       f"where Node.js's npm is installed)")
    python = ROOT / ".venv" / "bin" / "python"
    closed = closed_to_others(python) if python.exists() else None
    if closed is not None:
        missing.append(f"a Python every learner can run: the course's, {python.resolve()}, is behind {closed}, "
                       f"closed to other users; make the course's environment from one they can run, e.g. the "
                       f"system's: rm -rf .venv && make lab PYTHON=/usr/bin/python3.11")
    if os.geteuid() != 0:
        missing.append("root: the hub creates one system user per learner, run it as `sudo make workshop …`")
    return missing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m utils.course.hub", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    config = commands.add_parser("config", help="write the local hub's jupyterhub_config.py and its secrets")
    config.add_argument("--learners", default="", help='learner names, "ada grace" (or --roster)')
    config.add_argument("--roster", type=Path, help="a roster file: one `name [profile]` a line")
    config.add_argument("--instructor", required=True, help="the admin's user name")
    config.add_argument("--port", type=int, default=8000)
    config.add_argument("--ip", default="127.0.0.1", help="where the hub listens (0.0.0.0: every interface)")
    config.add_argument("--gpus", type=int, default=0, help="GPUs to share out (CUDA_VISIBLE_DEVICES per learner)")
    config.add_argument("--state", type=Path, default=Path.home() / ".deep-vision-lab-hub",
                        help="where the config, secrets, password and hub databases go (outside the repository)")
    config.add_argument("--group", default=grp.getgrgid(int(os.environ.get("SUDO_GID", os.getgid()))).gr_name,
                        help="the instructor's group: it reads the learners' records for the progress board")
    commands.add_parser("check", help="say what `make workshop` needs and this machine lacks")
    commands.add_parser("deploy", help="write utils/course/deploy/config.yaml and utils/course/deploy/Dockerfile")
    commands.add_parser("first-start", help="a Zero to JupyterHub pod's postStart: the learner's home")
    args = parser.parse_args(argv)
    if args.command == "deploy":
        print("wrote", ", ".join(str(path.relative_to(ROOT)) for path in write_deploy()))
        return 0
    if args.command == "check":
        missing = missing_tools()
        print("\n".join(["make workshop needs:", *missing]) if missing else "ready to start the hub",
              file=sys.stderr if missing else sys.stdout)
        return 1 if missing else 0
    if args.command == "first-start":
        first_start()
        return 0
    if args.state.resolve().is_relative_to(ROOT):
        parser.error(f"--state {args.state} is inside the repository: the secrets must stay out of it")
    try:
        text = args.roster.read_text() if args.roster else "\n".join(args.learners.split())
        settings = hub_settings(read_roster(text), args.instructor, port=args.port, ip=args.ip, gpus=args.gpus,
                                state=args.state.resolve(), group=args.group)
    except (OSError, ValueError) as error:
        parser.error(str(error))
    print(f"wrote {write_config(settings)}: {len(settings['learners'])} learners, admin {args.instructor}, "
          f"http://{args.ip}:{args.port}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
