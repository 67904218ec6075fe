"""utils/course/hub.py, the workshop hub written but not started: the generated jupyterhub_config.py loads into a
traitlets config with first-use passwords, the instructor as admin, the limits, the culler and each learner's
environment (profile, GPU, record folder); its secrets are made once, 0600, outside the repository; the Zero to
JupyterHub config.yaml and Dockerfile in utils/course/deploy/ are what SHARED generates and agree with the local config; a
learner's home gets the chapters, the exercise notebooks and links to the shared checkpoints without ever
overwriting their edits or the shared files."""

import grp
import os
import pwd
import stat
import types
from pathlib import Path

import pytest
import yaml
from traitlets.config import Config

from utils.course import hub

LEARNERS = {"ada": "cpu", "grace": "smoke", "linus": "cpu", "margaret": "gpu", "ken": "cpu"}


def _spawner(name):
    return types.SimpleNamespace(user=types.SimpleNamespace(name=name))


@pytest.fixture
def loaded(tmp_path):
    """The generated config for LEARNERS on two GPUs, loaded as JupyterHub loads it; and its settings."""
    settings = hub.hub_settings(LEARNERS, "ines", port=8123, gpus=2, state=tmp_path / "state", group="users")
    path = hub.write_config(settings)
    c = Config()
    exec(compile(path.read_text(), str(path), "exec"), {"c": c, "get_config": lambda: c})
    return c, settings


def test_the_generated_config_sets_up_the_room(loaded):
    c, settings = loaded
    assert (c.JupyterHub.ip, c.JupyterHub.port) == ("127.0.0.1", 8123)
    assert c.JupyterHub.authenticator_class == "firstuseauthenticator.FirstUseAuthenticator"
    assert c.FirstUseAuthenticator.create_users is False and c.Authenticator.allowed_users == set(LEARNERS)
    assert c.Authenticator.admin_users == {"ines"}
    assert c.JupyterHub.spawner_class == "jupyterhub.spawner.LocalProcessSpawner"
    assert c.Spawner.cmd[0].endswith(".venv/bin/jupyterhub-singleuser") and callable(c.Spawner.pre_spawn_hook)
    (culler,) = c.JupyterHub.services
    assert "--timeout=3600" in culler["command"] and c.JupyterHub.load_roles[0]["services"] == ["idle-culler"]
    environment = {name: value(_spawner("margaret")) for name, value in c.Spawner.environment.items()}
    assert environment["COURSE_PROFILE"] == "gpu" and environment["COURSE_LEARNER"] == "margaret"
    assert environment["COURSE_EXERCISES_DIR"] == settings["progress_path"] + "/margaret"
    assert environment["CUDA_VISIBLE_DEVICES"] == "0" and environment["OMP_NUM_THREADS"] == "1"
    assert c.Spawner.environment["CUDA_VISIBLE_DEVICES"](_spawner("ken")) == "1"    # the fifth: the next GPU
    assert c.ConfigurableHTTPProxy.command == [str(hub.PROXY)] and c.JupyterHub.hub_port == 8081
    assert c.ConfigurableHTTPProxy.api_url == "http://127.0.0.1:8001"


def test_the_secrets_are_made_once_private_and_outside_the_repository(loaded, tmp_path):
    c, settings = loaded
    secrets = {name: (tmp_path / "state" / "hub" / name).read_text() for name in hub.SECRET_FILES}
    assert all(len(value) == 64 for value in secrets.values())
    assert c.ConfigurableHTTPProxy.auth_token == secrets["proxy_token"]
    assert c.JupyterHub.cookie_secret_file == str(tmp_path / "state" / "hub" / "cookie_secret")
    for name in hub.SECRET_FILES:
        assert stat.S_IMODE((tmp_path / "state" / "hub" / name).stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "state" / "hub").stat().st_mode) == 0o700     # passwords and database too
    hub.write_config(settings)                                               # written again: the same secrets
    assert secrets == {name: (tmp_path / "state" / "hub" / name).read_text() for name in hub.SECRET_FILES}
    config_text = (tmp_path / "state" / "hub" / "jupyterhub_config.py").read_text()
    assert not any(value in config_text for value in secrets.values())
    with pytest.raises(SystemExit):
        hub.main(["config", "--learners", "ada", "--instructor", "ines", "--state", str(hub.ROOT / "hub-state")])
    assert not (hub.ROOT / "hub-state").exists()


def test_deploy_is_what_shared_generates_and_agrees_with_the_local_config(loaded):
    c, _ = loaded
    values = yaml.safe_load((hub.DEPLOY / "config.yaml").read_text())
    assert values == hub.z2jh_config(), "utils/course/deploy/ is stale: run python -m utils.course.hub deploy"
    assert (hub.DEPLOY / "Dockerfile").read_text() == hub.DOCKERFILE
    user = values["singleuser"]
    assert user["memory"]["limit"] == c.Spawner.mem_limit == hub.SHARED["memory_limit"]
    assert user["cpu"]["limit"] == c.Spawner.cpu_limit == hub.SHARED["cpu_limit"]
    assert values["cull"]["timeout"] == hub.SHARED["cull_idle_seconds"]
    assert f"--cull-every={values['cull']['every']}" in c.JupyterHub.services[0]["command"]
    assert values["hub"]["config"]["JupyterHub"]["authenticator_class"] == c.JupyterHub.authenticator_class
    assert user["extraEnv"]["COURSE_PROFILE"] == hub.SHARED["default_profile"]
    assert user["extraEnv"]["OMP_NUM_THREADS"] == c.Spawner.environment["OMP_NUM_THREADS"](_spawner("ada"))
    mounts = {mount["name"]: mount for mount in user["storage"]["extraVolumeMounts"]}
    assert mounts["checkpoints"] == {"name": "checkpoints", "mountPath": hub.SHARED["checkpoints_path"],
                                     "readOnly": True}
    assert mounts["progress"]["mountPath"] == user["extraEnv"]["COURSE_EXERCISES_DIR"] == hub.SHARED["progress_path"]
    assert values["custom"]["learners_per_gpu"] == hub.SHARED["learners_per_gpu"]
    assert f"-t {hub.SHARED['image']}" in hub.DOCKERFILE and user["image"]["name"] == hub.SHARED["image"]
    assert f"COURSE_PROFILE={hub.SHARED['default_profile']}" in hub.DOCKERFILE


def test_gpus_are_shared_out_by_learners_per_gpu():
    learners = dict.fromkeys([f"l{n}" for n in range(10)], "gpu")
    assert [hub.gpu_for(name, learners, 2, 4) for name in learners] == list("0000111100")
    assert hub.gpu_for("l3", learners, 0) == "" and hub.gpu_for("ines", learners, 2) == "0"


def test_a_roster_names_learners_and_their_profiles_and_bad_lines_say_how_to_write_them():
    assert hub.read_roster("ada\ngrace smoke  # on a laptop\n\n# a comment\n") == {"ada": "cpu", "grace": "smoke"}
    for text, message in (("Ada", "roster line 1"), ("ada turbo", "profile one of"), ("ada\nada", "listed twice"),
                          ("", "names no learner"), ("ada cpu extra", "write `name")):
        with pytest.raises(ValueError, match=message):
            hub.read_roster(text)
    with pytest.raises(ValueError, match="leave them out"):
        hub.hub_settings({"ines": "cpu"}, "ines", state=hub.ROOT, group="users")


def _course(tmp_path):
    """A miniature course: two chapter notebooks, a data set, a shared checkpoint, the exercise notebooks."""
    course = tmp_path / "course"
    for path in ("chapters/01a.ipynb", "chapters/04.ipynb", "data/fashion/train.idx", "template/drills.ipynb"):
        (course / path).parent.mkdir(parents=True, exist_ok=True)
        (course / path).write_text(path)
    shared = course / "data" / "checkpoints" / "cpu"
    shared.mkdir(parents=True)
    (shared / "resnet-abc.pt").write_text("shared weights")
    return {**hub.SHARED, "course": str(course), "exercise_template": str(course / "template"),
            "checkpoints_path": str(course / "data" / "checkpoints")}


def test_a_learners_home_is_made_once_and_their_edits_and_the_shared_checkpoints_survive(tmp_path):
    settings = _course(tmp_path)
    home, folder = tmp_path / "home" / "ada", tmp_path / "progress" / "ada"
    made = hub.prepare_home(home, folder, settings)
    assert (home / "chapters" / "04.ipynb").read_text() == "chapters/04.ipynb" and home / "exercises" in made
    assert (home / "exercises" / "drills.ipynb").read_text() == "template/drills.ipynb"
    assert (home / "data" / "fashion" / "train.idx").read_text() == "data/fashion/train.idx"
    checkpoint = home / "data" / "checkpoints" / "cpu" / "resnet-abc.pt"
    assert checkpoint.is_symlink() and checkpoint.read_text() == "shared weights"
    (home / "chapters" / "04.ipynb").write_text("my edits")
    (folder / "drills.ipynb").write_text("my drills")
    retrained = checkpoint.with_name(".partial")                 # a retrain saves atomically: write, then replace
    retrained.write_text("my weights")
    os.replace(retrained, checkpoint)
    assert hub.prepare_home(home, folder, settings) == []        # the next spawn: nothing made, nothing overwritten
    assert (home / "chapters" / "04.ipynb").read_text() == "my edits" and (folder / "drills.ipynb").read_text() \
        == "my drills"
    assert checkpoint.read_text() == "my weights"
    assert (tmp_path / "course/data/checkpoints/cpu/resnet-abc.pt").read_text() == "shared weights"


def test_check_says_what_the_hub_lacks_and_how_to_get_it(monkeypatch, capsys):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(hub, "PROXY", hub.ROOT / "no-such-proxy")
    monkeypatch.setattr(hub.os, "geteuid", lambda: 1000)
    assert hub.main(["check"]) == 1
    said = capsys.readouterr().err
    assert "jupyterhub-idle-culler: " in said and "install -r" in said and "requirements.lock" in said
    assert f"npm install --prefix {hub.ROOT / '.venv' / 'node'} configurable-http-proxy@5.3.0" in said
    assert "sudo make workshop" in said


def test_the_set_up_installs_the_hub_and_its_proxy_where_the_config_points():
    """requirements.txt holds the hub's packages (so the lock and a fresh clone's set-up do); the Makefile's set-up
    installs configurable-http-proxy at hub.PROXY_VERSION into .venv/node, the binary the generated config runs."""
    requirements = (hub.ROOT / "requirements.txt").read_text()
    assert all(f"\n{package}>=" in requirements for package in hub.HUB_PACKAGES.values())
    makefile = (hub.ROOT / "Makefile").read_text()
    assert f"PROXY_VERSION := {hub.PROXY_VERSION}\n" in makefile
    assert "npm install --prefix $(VENV)/node" in makefile and "configurable-http-proxy@$(PROXY_VERSION)" in makefile
    assert hub.PROXY == hub.ROOT / ".venv/node/node_modules/.bin/configurable-http-proxy"


def test_jupyterhub_itself_loads_the_config_where_it_is_installed(loaded, tmp_path):
    """With the hub's packages installed (`python -m utils.course.hub check`), JupyterHub initialises from the
    generated config — database, roster, admin, culler service, limits and each learner's environment — without
    starting the proxy or any server."""
    pytest.importorskip("jupyterhub", reason="the hub's packages are not installed: python -m utils.course.hub check")
    pytest.importorskip("firstuseauthenticator")
    import asyncio

    from jupyterhub import orm
    from jupyterhub.app import JupyterHub
    from jupyterhub.spawner import Spawner

    async def initialised():
        app = JupyterHub()
        await app.initialize(["-f", str(tmp_path / "state" / "hub" / "jupyterhub_config.py")])
        return app

    app = asyncio.run(initialised())
    assert sorted(app.authenticator.allowed_users) == sorted([*LEARNERS, "ines"])     # admins are allowed
    assert app.authenticator.admin_users == {"ines"} and "idle-culler" in app._service_map
    spawner = app.users[orm.User.find(app.db, "ken")].spawner
    assert spawner.mem_limit == 3 * 2**30 and spawner.cpu_limit == hub.SHARED["cpu_limit"]
    environment = Spawner.get_env(spawner)     # LocalProcessSpawner's adds the system user's home: none here
    assert (environment["COURSE_PROFILE"], environment["CUDA_VISIBLE_DEVICES"]) == ("cpu", "1")
    assert environment["MEM_LIMIT"] == str(3 * 2**30)


def test_the_pre_spawn_hook_keeps_each_learners_folders_to_them_and_the_records_readable_by_the_instructor(
        tmp_path, monkeypatch):
    settings = {**_course(tmp_path), "progress_path": str(tmp_path / "progress"),
                "group": grp.getgrgid(os.getgid()).gr_name}
    home = tmp_path / "home" / "ada"
    home.mkdir(parents=True, mode=0o755)
    # the system user that useradd would make, standing in as this process's own user: no user is created here
    user = pwd.struct_passwd(("ada", "x", os.getuid(), os.getgid(), "", str(home), "/bin/bash"))
    monkeypatch.setattr(hub, "ensure_system_user", lambda name, home_base: user)
    hub.prepare_learner(_spawner("ada"), settings)
    folder = tmp_path / "progress" / "ada"
    assert stat.S_IMODE(home.stat().st_mode) == 0o700 and stat.S_IMODE(folder.stat().st_mode) == 0o2750
    assert stat.S_IMODE((tmp_path / "progress").stat().st_mode) == 0o711
    assert (home / "exercises").resolve() == folder and (folder / "drills.ipynb").exists()


def test_a_python_the_learners_cannot_reach_is_named_with_the_folder_that_closes_it(tmp_path):
    """Each learner's server runs the course's Python as the learner: a folder on its way that other users cannot
    enter (a pyenv Python in root's 0700 home) is what `hub check` reports."""
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    python = closed / "python"
    python.write_text("")
    python.chmod(0o755)
    blocking = hub.closed_to_others(python)
    assert blocking is not None and blocking in python.parents and not blocking.stat().st_mode & 0o001
    assert hub.closed_to_others(Path("/bin/sh")) is None, "a system shell every user can run"
    closed.chmod(0o755)
    python.chmod(0o700)
    if hub.closed_to_others(closed) is None:            # the folders above tmp_path open too: the file itself shows
        assert hub.closed_to_others(python) == python.resolve()
