"""utils.course.execute: a chapter run as a script, kept as the notebook a kernel would have produced."""

import subprocess
import sys
import textwrap
from pathlib import Path

import jupytext
import nbformat

from utils.course import execute

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = '''\
# %% [markdown]
# # A tiny chapter

# %%
import ipywidgets as widgets
import matplotlib.pyplot as plt
from IPython.display import display

print("before the figure")
fig, ax = plt.subplots(figsize=(2, 2))
ax.plot([0, 1])
plt.show()
print("after the figure\\r20%\\r100%")
handle = display("first", display_id=True)
handle.update("updated in place")
display(widgets.IntSlider(value=7))
41 + 1

# %%
def broken():
    assert 1 == 2, "one is not two"


broken()

# %%
print("never runs")
'''


def run(tmp_path):
    source = tmp_path / "99_tiny.py"
    source.write_text(CHAPTER)
    output = tmp_path / "executed" / "99_tiny.ipynb"
    done = subprocess.run([sys.executable, "-m", "utils.course.execute", str(source), "--output", str(output)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={"COURSE_PROFILE": "smoke", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT),
                               "HOME": str(tmp_path)})
    return source, done, nbformat.read(output, as_version=4)


def test_outputs_in_order_with_a_traceback_naming_the_chapters_line(tmp_path):
    source, done, notebook = run(tmp_path)
    first, failing, never = [c for c in notebook.cells if c.cell_type == "code"]
    kinds = [(o.output_type, o.get("text") or sorted(o.data)) for o in first.outputs]
    assert kinds[0] == ("stream", "before the figure\n"), kinds
    assert kinds[1][0] == "display_data" and "image/png" in kinds[1][1], "the figure, where plt.show() put it"
    assert kinds[2] == ("stream", "100%\n"), "what a carriage return overwrote (a progress bar) is dropped"
    assert first.outputs[3].data["text/plain"] == "'updated in place'", "an updated display is replaced in place"
    assert "application/vnd.jupyter.widget-view+json" in first.outputs[4].data
    assert first.outputs[5].output_type == "execute_result" and first.outputs[5].data["text/plain"] == "42"
    assert done.returncode == 1 and never.outputs == [] and never.execution_count is None
    assert "99_tiny.py:24\n    broken()" in done.stdout and "99_tiny.py:21 in broken" in done.stdout, (
        f"the traceback should name the chapter's own lines (24, then 21): {done.stdout}")
    assert "AssertionError: one is not two" in failing.outputs[0].text, "the traceback is the failing cell's output"
    model = notebook.metadata.widgets[execute.WIDGET_STATE]["state"]
    assert any(m["state"].get("value") == 7 for m in model.values()), "the slider's state is kept for the page"
    run_record = notebook.metadata[execute.METADATA_KEY]
    assert run_record["profile"] == "smoke" and run_record["code_sha256"] == execute.code_hash(jupytext.read(source))
    assert run_record["completed"] is False, "a run that stopped at a failing cell is marked so: the book skips it"


def test_first_failure_reads_the_runners_traceback():
    from utils.course.verify import first_failure

    log = textwrap.dedent("""\
        Traceback (most recent call last):
          File /repo/chapters/03a_attention.py:365
            assert found, "some head should read the mirrored position"
        AssertionError: some head should read the mirrored position
    """)
    assert first_failure(log, "03a_attention.py") == "line 365: AssertionError: some head should read the mirrored position"
