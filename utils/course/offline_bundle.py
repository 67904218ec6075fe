"""``make offline-bundle``: what a GPU machine without internet needs to run the course, in the git-ignored .gpu/.

    python -m utils.course.offline_bundle [--python-version 3.12] [--platform TAG ...]

The lent GPU machines have no internet and their own Python 3.12 with torch, torchvision, torchmetrics, opencv,
matplotlib, tqdm, scipy and pandas, but not the course's notebook packages. The bundle holds

- ``data/``: the four Fashion-MNIST files, copied from wherever `utils.data` finds them;
- ``whl/``: wheels, for that machine's Python and platform, of the packages it lacks, at requirements.lock's
  versions;
- ``env.sh``: sourced there from the project root, it installs the wheels into .gpu/site and points PYTHONPATH
  and COURSE_DATA_DIR into the bundle.

On the GPU machine: ``source .gpu/env.sh``, then ``bash tests/gpu_check.sh smoke`` (or any course command).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from packaging.utils import canonicalize_name

from .. import data
from .lockfile import pins

REPO_ROOT = Path(__file__).resolve().parents[2]
BUNDLE = REPO_ROOT / ".gpu"  # env.sh and the Makefile's VERIFY_PYTHON refer to it by this name
# What the GPU image lacks, listed in full (its wheels are installed there without resolving dependencies): the
# widgets and IPython beneath them, jupytext and nbformat (make verify's runner reads the chapters and writes their
# executed notebooks), torchcam, pycocotools, and pytest for tests/gpu_check.sh's GPU tests.
PACKAGES = """ipywidgets comm widgetsnbextension jupyterlab_widgets traitlets ipython ipython-pygments-lexers jedi parso
    matplotlib-inline pexpect ptyprocess prompt_toolkit wcwidth stack_data asttokens executing pure_eval pygments psutil
    jupytext nbformat fastjsonschema jsonschema jsonschema-specifications referencing rpds-py attrs jupyter_core
    platformdirs markdown-it-py mdurl mdit-py-plugins PyYAML
    torchcam pycocotools pytest pluggy iniconfig packaging""".split()
# pip matches --platform tags literally, so every tag a glibc ≥ 2.28 x86_64 machine's wheels come with is listed.
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"]
ENV_SH = """\
# Sourced on the GPU machine, from the project root, before the command (written by `make offline-bundle`).
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target .gpu/site \\
  .gpu/whl/*.whl 2>/dev/null
export PYTHONPATH=$PWD:$PWD/.gpu/site COURSE_DATA_DIR=$PWD/.gpu/data MPLBACKEND=Agg PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
"""


def pip_download(specs: list[str], python_version: str, platforms: list[str], dest: Path) -> None:
    """Wheels of exactly ``specs`` (no dependencies: the list is complete) for that Python and platform."""
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                    "--python-version", python_version, "--implementation", "cp",
                    *(arg for tag in platforms for arg in ("--platform", tag)), "--dest", str(dest), *specs],
                   check=True)


def data_files(folder: Path) -> list[Path]:
    """The four Fashion-MNIST files utils.data reads under ``folder``, each .gz rather than raw where both are."""
    candidates = {name: [folder / sub / (name + suffix) for suffix in (".gz", "") for sub in data.SOURCE_SUBFOLDERS]
                  for name in data._FILES}
    return [next(path for path in paths if path.is_file()) for paths in candidates.values()]


def build(out: Path = BUNDLE, python_version: str = "3.12", platforms: list[str] = PLATFORMS,
          lock: Path = REPO_ROOT / "requirements.lock", download=pip_download) -> list[str]:
    """Fill ``out`` with the bundle; return the package specifications given to ``download``."""
    (out / "data").mkdir(parents=True, exist_ok=True)
    for path in data_files(data._locate()[0]):
        shutil.copyfile(path, out / "data" / path.name)
    locked = pins(lock)
    specs = [f"{name}=={locked[canonicalize_name(name)]}" if canonicalize_name(name) in locked else name
             for name in PACKAGES]
    shutil.rmtree(out / "whl", ignore_errors=True)  # an older bundle's wheel would be installed beside its update
    (out / "whl").mkdir()
    download(specs, python_version, platforms, out / "whl")
    (out / "env.sh").write_text(ENV_SH)
    return specs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python-version", default="3.12", help="the GPU machine's Python (default: %(default)s)")
    parser.add_argument("--platform", action="append", dest="platforms",
                        help=f"a wheel tag of the GPU machine, repeatable (default: {' '.join(PLATFORMS)})")
    args = parser.parse_args()
    build(python_version=args.python_version, platforms=args.platforms or PLATFORMS)
    size = sum(path.stat().st_size for path in BUNDLE.rglob("*") if path.is_file())
    wheels = len(list((BUNDLE / "whl").glob("*.whl")))
    print(f"{BUNDLE}: {size / 2**20:.0f} MiB ({wheels} wheels, the data, env.sh). Take .gpu along to the GPU machine; "
          "there, from the project root: source .gpu/env.sh && bash tests/gpu_check.sh smoke")


if __name__ == "__main__":
    main()
