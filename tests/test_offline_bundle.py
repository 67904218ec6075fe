"""`make offline-bundle` (utils/course/offline_bundle.py): the data copied byte for byte, env.sh, and pip asked for the
right wheels. The download is replaced: no test touches the network."""

import subprocess
from pathlib import Path

from packaging.utils import canonicalize_name

from utils import data
from utils.course import lockfile, offline_bundle

ROOT = Path(__file__).resolve().parents[1]


def _source(folder: Path) -> dict[str, bytes]:
    """Stand-ins for the four files, laid out as utils.data finds them; the bytes the bundle must hold, by name."""
    names = list(data._FILES)
    (folder / "FashionMNIST" / "raw").mkdir(parents=True)
    (folder / "FashionMNIST" / "raw" / names[0]).write_bytes(b"raw beside its .gz")
    layout = {f"FashionMNIST/raw/{names[0]}.gz": b"gz preferred", names[1]: b"raw only",
              f"{names[2]}.gz": b"a", f"{names[3]}.gz": b"b"}
    for path, content in layout.items():
        (folder / path).write_bytes(content)
    return {Path(path).name: content for path, content in layout.items()}


def test_bundle_holds_the_data_env_and_the_locked_wheels(tmp_path, monkeypatch):
    expected = _source(tmp_path / "source")
    monkeypatch.setattr(data, "_locate", lambda: (tmp_path / "source", "test"))
    out = tmp_path / ".gpu"
    (out / "whl").mkdir(parents=True)
    (out / "whl" / "stale-1.0-py3-none-any.whl").write_bytes(b"")
    asked = []

    def download(specs, python_version, platforms, dest):
        asked.append((specs, python_version, platforms, dest))
        (dest / "fresh-1.0-py3-none-any.whl").write_bytes(b"")

    specs = offline_bundle.build(out, "3.13", ["manylinux_2_28_aarch64"], download=download)
    assert {path.name: path.read_bytes() for path in (out / "data").iterdir()} == expected
    assert [path.name for path in (out / "whl").iterdir()] == ["fresh-1.0-py3-none-any.whl"]
    assert asked == [(specs, "3.13", ["manylinux_2_28_aarch64"], out / "whl")]
    locked = lockfile.pins(ROOT / "requirements.lock")
    assert specs == [f"{name}=={locked[canonicalize_name(name)]}" for name in offline_bundle.PACKAGES]
    assert {"ipywidgets", "torchcam", "pycocotools", "pytest", "pluggy", "iniconfig", "packaging"} <= {
        spec.split("==")[0] for spec in specs}
    env = (out / "env.sh").read_text()
    assert "--no-index" in env and "--target .gpu/site" in env
    assert "export PYTHONPATH=$PWD:$PWD/.gpu/site COURSE_DATA_DIR=$PWD/.gpu/data" in env
    assert subprocess.run(["bash", "-n", str(out / "env.sh")]).returncode == 0


def test_a_package_the_lock_lacks_is_asked_for_unpinned(tmp_path, monkeypatch):
    _source(tmp_path / "source")
    monkeypatch.setattr(data, "_locate", lambda: (tmp_path / "source", "test"))
    (tmp_path / "lock").write_text("# a lock\nipywidgets==8.0.0 ; sys_platform == 'linux'\n")
    specs = offline_bundle.build(tmp_path / ".gpu", lock=tmp_path / "lock", download=lambda *args: None)
    assert specs[0] == "ipywidgets==8.0.0" and "pytest" in specs


def test_pip_is_asked_for_that_python_and_platform_only(monkeypatch):
    commands = []
    monkeypatch.setattr(subprocess, "run", lambda command, check: commands.append(command))
    offline_bundle.pip_download(["pytest==9.2.0"], "3.12", ["tag_a", "tag_b"], Path("whl"))
    (command,) = commands
    assert command[1:4] == ["-m", "pip", "download"] and command[-1] == "pytest==9.2.0"
    assert {"--no-deps", "--only-binary=:all:"} <= set(command)
    pairs = set(zip(command, command[1:]))
    assert {("--python-version", "3.12"), ("--implementation", "cp"), ("--platform", "tag_a"),
            ("--platform", "tag_b"), ("--dest", "whl")} <= pairs
