"""The course image's build steps (utils/course/deploy/Dockerfile, for Zero to JupyterHub) run as a script in a fresh
folder holding what `COPY .` copies — the repository's tracked files — with make in dry-run mode (`make -n`): this
machine has no Docker, and a real build installs the whole course environment. What it proves: every make target
the image builds exists in a fresh clone, and the set-up it runs is the lock's, the proxy's and the exercises'. The
two system steps (apt-get, useradd) belong to the base image and are only listed."""

import shutil
import subprocess

import pytest

from utils.course import hub

SYSTEM_STEPS = ("apt-get update", "useradd ")          # need root in the image's base system: not run here


def build_steps() -> tuple[str, list[str]]:
    """The Dockerfile's folder (its WORKDIR, where COPY puts the course) and its RUN commands, in order."""
    lines = hub.DOCKERFILE.splitlines()
    (workdir,) = [line.split(None, 1)[1] for line in lines if line.startswith("WORKDIR ")]
    return workdir, [line.split(None, 1)[1] for line in lines if line.startswith("RUN ")]


@pytest.mark.skipif(shutil.which("git") is None or shutil.which("make") is None, reason="needs git and make")
def test_the_image_build_steps_run_in_a_fresh_copy_of_the_course(tmp_path):
    workdir, steps = build_steps()
    system = [step for step in steps if step.startswith(SYSTEM_STEPS)]
    course = [step for step in steps if not step.startswith(SYSTEM_STEPS)]
    assert len(system) == len(SYSTEM_STEPS) and course, f"the Dockerfile's steps changed: {steps}"
    fresh = tmp_path / "deep-vision-lab"
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=hub.ROOT, capture_output=True, check=True).stdout
    for name in filter(None, tracked.decode().split("\0")):
        source = hub.ROOT / name
        if source.is_file():                              # a file deleted in the working tree is not copied
            (fresh / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, fresh / name)
    printed = []
    for step in course:
        script = step.replace(workdir, str(fresh)).replace("make ", "make -n ")
        run = subprocess.run(["bash", "-c", script], cwd=fresh, capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, f"the image's step {step!r} fails in a fresh copy:\n{run.stderr[-2000:]}"
        printed.append(run.stdout)
    commands = "".join(printed)
    assert "pip install --quiet -r requirements.lock -e ." in commands, "the image installs the lock"
    assert "npm install --prefix .venv/node" in commands and f"configurable-http-proxy@{hub.PROXY_VERSION}" in \
        commands, "the set-up installs the proxy the hub runs (a pod's image has no npm: the step says so, goes on)"
    assert "jupytext --update --to ipynb chapters/" in commands, "the image's notebooks are generated"
    assert "utils.course.exercise_notebooks" in commands, "the image makes the exercise notebooks"
    assert not (fresh / ".venv").exists(), "a dry run installs nothing"
