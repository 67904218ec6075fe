"""The notebook-run plugin (tests/nbval_course.py) fails a cell with more outputs than JupyterLab shows, and passes
one within the limit; under `make test` it leaves the chapters to the browser stage when Chromium is there."""

import subprocess
import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent


def _run_nbval(tmp_path, outputs: int, name: str = "", *options, **env) -> subprocess.CompletedProcess:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        f"from IPython.display import display\nfor i in range({outputs}):\n    display(i)")])
    path = tmp_path / f"{name or f'outputs_{outputs}'}.ipynb"
    nbformat.write(notebook, path)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "nbval_course",
                           "--nbval-lax", "--nbval-current-env", "-p", "no:cacheprovider", *options, str(path)],
                          cwd=tmp_path, env={"PYTHONPATH": str(HERE), "PATH": "/usr/bin:/bin", **env},
                          capture_output=True, text=True, timeout=300)


def test_a_cell_with_too_many_outputs_fails_and_one_within_the_limit_passes(tmp_path):
    crowded = _run_nbval(tmp_path, 21)
    assert crowded.returncode != 0 and "emits 21 outputs" in crowded.stdout, crowded.stdout[-2000:]
    fine = _run_nbval(tmp_path, 20)
    assert fine.returncode == 0, fine.stdout[-2000:]


def test_with_chromium_the_chapters_are_left_to_the_browser_and_the_stage_passes(tmp_path):
    chromium = tmp_path / "browser" / "chromium"
    chromium.parent.mkdir()
    chromium.write_text("#!/bin/sh\n")
    chromium.chmod(0o755)
    left = _run_nbval(tmp_path, 21, "01a_convolution_by_hand", "--leave-chapters-to-the-browser",
                      CHROMIUM=str(chromium))
    assert left.returncode == 0 and "1 deselected" in left.stdout, left.stdout[-2000:]
    without = _run_nbval(tmp_path, 21, "01a_convolution_by_hand", "--leave-chapters-to-the-browser",
                         CHROMIUM=str(tmp_path / "none"), PATH=str(tmp_path))
    assert without.returncode != 0 and "emits 21 outputs" in without.stdout, "no Chromium: the chapter runs here"
