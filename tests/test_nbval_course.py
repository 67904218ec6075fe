"""The notebook-run plugin (tests/nbval_course.py) fails a cell with more outputs than JupyterLab shows, and passes
one within the limit."""

import subprocess
import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent


def _run_nbval(tmp_path, outputs: int) -> subprocess.CompletedProcess:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        f"from IPython.display import display\nfor i in range({outputs}):\n    display(i)")])
    path = tmp_path / f"outputs_{outputs}.ipynb"
    nbformat.write(notebook, path)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "nbval_course",
                           "--nbval-lax", "--nbval-current-env", "-p", "no:cacheprovider", str(path)],
                          cwd=tmp_path, env={"PYTHONPATH": str(HERE), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=300)


def test_a_cell_with_too_many_outputs_fails_and_one_within_the_limit_passes(tmp_path):
    crowded = _run_nbval(tmp_path, 21)
    assert crowded.returncode != 0 and "emits 21 outputs" in crowded.stdout, crowded.stdout[-2000:]
    fine = _run_nbval(tmp_path, 20)
    assert fine.returncode == 0, fine.stdout[-2000:]
