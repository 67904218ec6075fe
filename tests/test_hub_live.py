"""The workshop hub started for real on loopback (issue 27): `utils.course.hub`'s generated config run by JupyterHub
with configurable-http-proxy on 127.0.0.1 and free ports, three learners and an instructor. Each signs in through the
hub's REST API (first-use passwords); as root, each learner's server is spawned as their own throwaway system user;
a cell runs in one learner's kernel and finds the other learner's files and the shared checkpoints closed to it
while its own copy can be retrained; its self-checks reach the progress board; an idle server is culled; and
stopping the hub leaves no process and no port behind. Everything lives in a temporary folder; the users are
removed afterwards, even on failure. Where users cannot be created (not root, no useradd) that part is skipped,
saying so.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import datetime
import grp
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest

from utils.course import hub
for module, package in hub.HUB_PACKAGES.items():
    pytest.importorskip(module, reason=f"{package} is not installed: make .venv/.installed (requirements.lock)")
psutil = pytest.importorskip("psutil")
websocket = pytest.importorskip("websocket")
requests = pytest.importorskip("requests")
if not hub.PROXY.exists():
    pytest.skip(f"configurable-http-proxy is not installed at {hub.PROXY}: the set-up installs it with npm "
                f"(make .venv/.installed); npm {'is missing' if shutil.which('npm') is None else 'did not run'}",
                allow_module_level=True)

from utils.course.workshop import progress_board  # noqa: E402  (after the skips: it needs nothing of the hub's)

CULL_IDLE_SECONDS = 10           # the test's culler: an idle server stops after 10 s, checked every 2 s
START_TIMEOUT_S = 45
STOP_TIMEOUT_S = 60              # after SIGTERM; then the test kills the hub (exit -9) and fails
CAN_CREATE_USERS = os.geteuid() == 0 and shutil.which("useradd") is not None and shutil.which("userdel") is not None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_for(predicate, what: str, timeout: float = START_TIMEOUT_S, log: Path | None = None):
    """Poll ``predicate`` until it returns something true; fail saying ``what`` (and the hub log's end) at the
    deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            tail = hub_log(log) if log else ""
            raise AssertionError(f"{what}: not within {timeout} s\n--- hub log ---\n{tail}")
        time.sleep(0.3)


def hub_log(log: Path) -> str:
    """The end of the hub's log without its routine successful requests."""
    lines = [line for line in log.read_text(errors="replace").splitlines() if " 200 " not in line]
    return "\n".join(lines)[-4000:]


@dataclasses.dataclass
class Room:
    folder: Path
    settings: dict
    url: str
    learners: list[str]
    instructor: str
    process: subprocess.Popen
    log: Path
    no_servers_because: str     # "" when the learners' servers can be spawned here
    tokens: dict[str, str] = dataclasses.field(default_factory=dict)

    def api(self, method: str, path: str, as_user: str | None = None, **kwargs) -> requests.Response:
        headers = {"Authorization": f"token {self.tokens[as_user]}"} if as_user else {}
        return requests.request(method, f"{self.url}/hub/api{path}", headers=headers, **{"timeout": 20, **kwargs})

    def ports(self) -> list[int]:
        return [self.settings[name] for name in ("port", "hub_api_port", "proxy_api_port")]

    def stop(self) -> list[psutil.Process]:
        """Stop the hub as a service manager does (it stops the servers, the culler and the proxy); return its
        processes left alive, then killed. The wait allows for each server's own stop (JupyterHub's SIGINT, SIGTERM,
        SIGKILL steps: 10 + 5 + 5 s) on a loaded machine; alone it takes about 4 s."""
        if self.process.poll() is not None:
            return []
        try:
            family = [psutil.Process(self.process.pid), *psutil.Process(self.process.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            family = []
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        gone, alive = psutil.wait_procs(family, timeout=10)
        for process in alive:
            process.kill()
        return alive


def _user_processes(names: list[str]) -> list[psutil.Process]:
    uids = set()
    for name in names:
        try:
            uids.add(pwd.getpwnam(name).pw_uid)
        except KeyError:
            pass
    return [p for p in psutil.process_iter(["uids"]) if p.info["uids"] and p.info["uids"].real in uids]


def _remove_users(names: list[str]) -> None:
    """End the throwaway users' processes (started by this test's hub) and delete the users."""
    for process in _user_processes(names):
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    for name in names:
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        subprocess.run(["userdel", name], check=False, capture_output=True)


def learner_python(folder: Path) -> tuple[list[str] | None, str]:
    """The command that runs a learner's server, and why when there is none. The course's own when every user can
    run its Python; else (as on a machine whose Python lives in root's home) a stand-in made in ``folder``: a venv
    of a system Python of the same version that every user can run, reading the course's installed packages."""
    python = hub.ROOT / ".venv" / "bin" / "python"
    closed = hub.closed_to_others(python)
    if closed is None:
        return [str(hub.ROOT / ".venv" / "bin" / "jupyterhub-singleuser")], ""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    system = next((path for path in (f"/usr/bin/{version}", f"/usr/local/bin/{version}")
                   if Path(path).exists() and hub.closed_to_others(Path(path)) is None), None)
    if system is None:
        return None, f"the course's Python is behind {closed}, closed to the learners' users, and no {version} " \
                     f"every user can run stands in for it"
    venv = folder / "learner-venv"
    subprocess.run([system, "-m", "venv", "--without-pip", str(venv)], check=True)
    packages = hub.ROOT / ".venv" / "lib" / version / "site-packages"
    (venv / "lib" / version / "site-packages" / "course.pth").write_text(
        f"import site; site.addsitedir({str(packages)!r})\n")
    for shared in ("share", "etc"):      # JupyterLab, the widgets' front end and the server's extensions
        (venv / shared).symlink_to(hub.ROOT / ".venv" / shared)
    return [str(venv / "bin" / "python"), "-m", "jupyterhub.singleuser"], ""


def _notebook() -> str:
    return json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})


@contextlib.contextmanager
def running_room(cull_idle_seconds: int, server_options: tuple[str, ...] = ()):
    """The generated hub running from a temporary folder on free loopback ports, its culler stopping servers idle
    for ``cull_idle_seconds``, each learner's server started with ``server_options`` too; stopped, its users removed
    and its folder deleted afterwards, whatever happened."""
    prefix = f"dvl{secrets.token_hex(3)}"                # unique: never an existing user's name
    learners, instructor = [f"{prefix}-{letter}" for letter in "abc"], f"{prefix}-i"
    folder = Path(tempfile.mkdtemp(prefix="dvl-hub-"))
    folder.chmod(0o711)                                  # the learners' servers reach their own folders in it
    (folder / "template").mkdir()
    (folder / "template" / "drills.ipynb").write_text(_notebook())
    shared = folder / "checkpoints" / "cpu"
    shared.mkdir(parents=True)
    (folder / "checkpoints").chmod(0o755)
    shared.chmod(0o755)
    (shared / "shared.pt").write_bytes(b"the instructor's weights")
    (folder / "home").mkdir(mode=0o755)
    ports = set()
    while len(ports) < 3:
        ports.add(free_port())
    port, hub_api_port, proxy_api_port = sorted(ports)
    settings = hub.hub_settings(dict.fromkeys(learners, "smoke"), instructor, port=port, state=folder / "state",
                                group=grp.getgrgid(os.getgid()).gr_name, hub_api_port=hub_api_port,
                                proxy_api_port=proxy_api_port, home_base=folder / "home")
    settings.update(cull_idle_seconds=cull_idle_seconds, cull_every_seconds=2,
                    checkpoints_path=str(folder / "checkpoints"), exercise_template=str(folder / "template"))
    command, why_not = learner_python(folder) if CAN_CREATE_USERS else (None, "")
    if command:
        settings["singleuser"] = [*command, *server_options]
    config = hub.write_config(settings)
    log = folder / "hub.log"
    process = None
    try:
        with open(log, "w") as out:
            process = subprocess.Popen([str(hub.ROOT / ".venv" / "bin" / "jupyterhub"), "-f", str(config)],
                                       cwd=config.parent, stdout=out, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        live = Room(folder, settings, url, learners, instructor, process, log, why_not)

        def answers():
            if process.poll() is not None:
                raise AssertionError(f"the hub exited ({process.returncode}):\n{hub_log(log)}")
            try:
                return requests.get(f"{url}/hub/api/", timeout=2).status_code == 200
            except requests.ConnectionError:
                return False

        wait_for(answers, "the hub answering on its public port", log=log)
        yield live
    finally:
        if process is not None:
            Room(folder, settings, "", learners, instructor, process, log, why_not).stop()
        _remove_users([*learners, instructor])
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def room():
    with running_room(CULL_IDLE_SECONDS) as live:
        yield live


def _execute(room: Room, learner: str, code: str) -> str:
    """Run ``code`` in a new kernel of ``learner``'s server (through the proxy, with their token, over the kernel's
    websocket) and return what it printed; fail on an error."""
    headers = {"Authorization": f"token {room.tokens[learner]}"}
    base = f"{room.url}/user/{learner}/api/kernels"
    kernel = requests.post(base, headers=headers, json={"name": "python3"}, timeout=30)
    assert kernel.status_code == 201, f"{learner}'s server did not start a kernel: {kernel.status_code} {kernel.text}"
    channel = websocket.create_connection(f"{base.replace('http', 'ws', 1)}/{kernel.json()['id']}/channels",
                                          header=[f"Authorization: token {room.tokens[learner]}"], timeout=90)
    message_id, printed, errors = uuid.uuid4().hex, [], []
    try:
        channel.send(json.dumps({
            "header": {"msg_id": message_id, "username": learner, "session": uuid.uuid4().hex,
                       "msg_type": "execute_request", "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell",
            "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True}}))
        while True:
            frame = channel.recv()
            if isinstance(frame, bytes):                        # a widget's binary buffers: not printed text
                continue
            message = json.loads(frame)
            if message.get("parent_header", {}).get("msg_id") != message_id or message["channel"] != "iopub":
                continue
            kind, content = message["msg_type"], message["content"]
            if kind == "stream":
                printed.append(content["text"])
            elif kind == "error":
                errors.append(f"{content['ename']}: {content['evalue']}")
            elif kind == "status" and content["execution_state"] == "idle":
                break
    finally:
        channel.close()
    assert not errors, f"the cell failed in {learner}'s kernel: {errors}\nprinted: {''.join(printed)}"
    return "".join(printed)


# Run in learner A's kernel: what A may do to B's files and to the shared checkpoints, A's self-checks recorded.
ISOLATION_CELL = """
import json, os, pathlib

def attempt(action):
    try:
        action()
        return "allowed"
    except PermissionError:
        return "denied"

other_home, other_record = pathlib.Path({other_home!r}), pathlib.Path({other_record!r})
shared = pathlib.Path({shared!r})
mine = pathlib.Path.home() / "data" / "checkpoints" / "cpu" / "shared.pt"
found = {{
    "uid": os.getuid(), "learner": os.environ["COURSE_LEARNER"], "profile": os.environ["COURSE_PROFILE"],
    "limits": [os.environ.get(name) for name in ("MEM_LIMIT", "CPU_LIMIT", "OMP_NUM_THREADS")],
    "own chapters": len(list((pathlib.Path.home() / "chapters").glob("*.ipynb"))),
    "read the other's home": attempt(lambda: list(other_home.iterdir())),
    "write the other's home": attempt(lambda: (other_home / "planted.txt").write_text("x")),
    "read the other's record": attempt(lambda: list(other_record.iterdir())),
    "write the other's record": attempt(lambda: open(other_record / "attempts.jsonl", "a").close()),
    "read the shared checkpoint": attempt(lambda: mine.read_bytes()),
    "write the shared checkpoint through the link": attempt(lambda: open(mine, "ab").close()),
    "write the shared checkpoint": attempt(lambda: open(shared, "ab").close()),
    "add to the shared folder": attempt(lambda: (shared.parent / "planted.pt").write_bytes(b"")),
}}
partial = mine.with_name(".partial")          # a retrain saves its own file in place of the link
partial.write_bytes(b"retrained")
os.replace(partial, mine)
found["retrained its own copy"] = mine.read_bytes() == b"retrained" and not mine.is_symlink()

from utils import exercises, numpy_layers, plotting, results, start_chapter
start_chapter("01a_convolution_by_hand")                        # a chapter's figures and results: the learner's own
results.report("a headline figure", 0.5)
found["outputs in own home"] = (plotting.OUTPUTS.is_relative_to(pathlib.Path.home())
                                and results.results_path().is_file())
exercises.check("conv2d", numpy_layers.conv2d)                  # a correct conv2d: passes
exercises.check("max_pool2d", lambda *args, **kwargs: None)     # a stub returning nothing: stuck
print(json.dumps(found))
"""


def _keep_active(room: Room, learners: list[str], stop: threading.Event) -> None:
    """Report ``learners``' servers as in use every second (as their JupyterLab does), so only the others idle."""
    while not stop.wait(1.0):
        now = datetime.datetime.now(datetime.timezone.utc).isoformat()
        for learner in learners:
            try:
                room.api("POST", f"/users/{learner}/activity", learner,
                         json={"last_activity": now, "servers": {"": {"last_activity": now}}})
            except requests.RequestException:
                pass                                             # the next second's report will do


def _server(room: Room, learner: str) -> dict | None:
    return room.api("GET", f"/users/{learner}", learner).json()["servers"].get("")


def test_the_workshop_hub_serves_the_room_on_loopback(room):
    learners, instructor = room.learners, room.instructor
    passwords = {name: secrets.token_urlsafe(12) for name in [*learners, instructor]}
    for name, password in passwords.items():           # the first login chooses the password
        answer = room.api("POST", f"/users/{name}/tokens", json={"auth": {"username": name, "password": password}})
        assert answer.status_code == 201, f"{name} could not sign in through the REST API: {answer.status_code}"
        room.tokens[name] = answer.json()["token"]
    wrong = room.api("POST", f"/users/{learners[0]}/tokens",
                     json={"auth": {"username": learners[0], "password": "not-their-password"}})
    assert wrong.status_code == 403, f"a wrong password after the first login must be refused, got {wrong.status_code}"
    stranger = room.api("POST", "/users/intruder/tokens",
                        json={"auth": {"username": "intruder", "password": "a-long-password"}})
    assert stranger.status_code == 403, f"only the roster signs in, yet a stranger got {stranger.status_code}"
    listed = room.api("GET", "/users", instructor)
    assert listed.status_code == 200 and {u["name"] for u in listed.json()} == {*learners, instructor}, \
        f"the instructor (admin) lists the room: {listed.status_code}"
    assert [u["admin"] for u in listed.json() if u["name"] == instructor] == [True]
    assert room.api("GET", "/users", learners[0]).status_code == 403, "a learner must not list the room"

    if not CAN_CREATE_USERS or room.no_servers_because:
        alive = room.stop()
        assert not alive and not any(listening(port) for port in room.ports()), "the hub did not stop cleanly"
        pytest.skip("signing in tested; spawning learners' servers skipped: " + (
            room.no_servers_because or "they run as one system user each, and this test cannot create users here "
                                       f"({'not root' if os.geteuid() else 'no useradd/userdel'})"))

    a, b, idle = learners
    stop_reporting = threading.Event()
    reporter = threading.Thread(target=_keep_active, args=(room, [a, b], stop_reporting), daemon=True)
    reporter.start()
    try:
        # all three at once, as a room arrives; the idle one's culling overlaps the work with the others
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            answers = dict(zip(learners, pool.map(
                lambda learner: room.api("POST", f"/users/{learner}/server", learner, timeout=START_TIMEOUT_S),
                learners)))
        for learner, answer in answers.items():
            assert answer.status_code in (201, 202), \
                f"{learner}'s server did not spawn: {answer.status_code}\n{hub_log(room.log)}"
        for learner in (idle, a, b):
            wait_for(lambda: (_server(room, learner) or {}).get("ready"), f"{learner}'s server ready", log=room.log)
        idle_ready_at = time.monotonic()
        homes = {name: Path(pwd.getpwnam(name).pw_dir) for name in learners}
        assert all(home.parent == room.folder / "home" for home in homes.values()), homes

        progress = Path(room.settings["progress_path"])
        printed = _execute(room, a, ISOLATION_CELL.format(
            other_home=str(homes[b]), other_record=str(progress / b),
            shared=str(room.folder / "checkpoints" / "cpu" / "shared.pt")))
        found = json.loads(printed.strip().splitlines()[-1])
        assert found["uid"] == pwd.getpwnam(a).pw_uid and (found["learner"], found["profile"]) == (a, "smoke"), \
            f"{a}'s kernel runs as {a}'s system user with their environment: {found}"
        assert found["limits"] == [str(3 * 2**30), "1.0", "1"], \
            f"the limits a local server gets, as settings (LocalProcessSpawner cannot enforce them): {found['limits']}"
        assert found["own chapters"] == len(list((hub.ROOT / "chapters").glob("*.ipynb"))) > 0, found
        closed = [key for key in found if key.startswith(("read the other", "write", "add"))]
        assert all(found[key] == "denied" for key in closed), \
            f"{a} reached {b}'s files or changed the shared checkpoints: {found}"
        assert found["read the shared checkpoint"] == "allowed" and found["retrained its own copy"], found
        assert found["outputs in own home"], f"{a}'s chapter must write its figures and results in {a}'s home: {found}"
        assert (room.folder / "checkpoints" / "cpu" / "shared.pt").read_bytes() == b"the instructor's weights"

        board = progress_board(progress, exercises=["conv2d", "max_pool2d"])
        rows = {row.learner: row for row in board.rows}
        assert set(rows) == set(learners), f"the board lists each learner's folder: {sorted(rows)}"
        assert rows[a].cells["conv2d"].state == "passed" and rows[a].cells["max_pool2d"].state == "stuck", \
            f"{a}'s self-checks reach the board: {rows[a]}"
        assert not rows[a].damage and rows[b].cells["conv2d"].state == "not tried", rows

        wait_for(lambda: _server(room, idle) is None, f"{idle}'s idle server culled after {CULL_IDLE_SECONDS} s",
                 timeout=max(1.0, idle_ready_at + CULL_IDLE_SECONDS + 20 - time.monotonic()), log=room.log)
        assert _server(room, a) and _server(room, b), "the culler stopped a server in use"
    finally:
        stop_reporting.set()
        reporter.join()

    users = [*learners, instructor]
    assert _user_processes(users), "the learners' servers run as their own users until the hub stops"
    alive = room.stop()
    assert room.process.returncode == 0, (f"the hub exited with {room.process.returncode} (-9: it was still running "
                                          f"{STOP_TIMEOUT_S} s after SIGTERM)\n{hub_log(room.log)}")
    assert not alive, f"processes the hub started outlived it: {[p.pid for p in alive]}"
    assert not _user_processes(users), "a learner's process outlived the hub"
    assert not any(listening(port) for port in room.ports()), f"a port stayed open: {room.ports()}"
