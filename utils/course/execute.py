"""Run a chapter as a script and keep what it showed as an executed notebook: how `make verify` runs a chapter.

    python -m utils.course.execute chapters/04_detection.py --output chapters/outputs/executed/cpu/04_detection.ipynb

The cells of the chapter's jupytext source run in order in one IPython shell inside this process, as a kernel would
run them but with no kernel and no Jupyter server (the GPU machine has neither): figures, explorers' static figures,
printed text and the last expression's value are kept as the cell's outputs, and the notebook is written with the
widgets' state, the profile, the device, the run time and its code's hash in its metadata (what `make book` reads,
so a book built after `make verify` executes nothing again). Everything printed also goes to standard output as it
happens (`make verify`'s log), and a traceback names the chapter's file and line, as a script's does. The exit code is
0 when every cell ran, 1 when one failed (the notebook is still written, up to that cell); Ctrl-C stops at once.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import io
import sys
import time
from pathlib import Path

import jupytext
import nbformat
from IPython.core.compilerop import CachingCompiler
from IPython.core.displayhook import DisplayHook
from IPython.core.displaypub import DisplayPublisher
from IPython.core.interactiveshell import InteractiveShell
from traitlets import Type

from .. import results

METADATA_KEY = "course_book"         # an executed notebook's profile, device, date, run time and code's hash
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def code_hash(notebook) -> str:
    """The hash of what a run's outputs depend on: the chapter's code cells in order (not its Markdown)."""
    code = "\0".join(cell.source for cell in notebook.cells if cell.cell_type == "code")
    return hashlib.sha256(code.encode()).hexdigest()


def terminal_text(text: str) -> str:
    """Stream text as a terminal leaves it: of the parts a carriage return overwrote (a progress bar's updates),
    only the last."""
    return "\n".join(line.rsplit("\r", 1)[-1] for line in text.split("\n"))


class _Outputs:
    """The outputs of the cell running now, in the order they came; a display with an id is replaced in place when
    updated (a live training plot), as a notebook front end does."""

    def __init__(self):
        self.cell: list = []
        self.by_display_id: dict[str, list[int]] = {}

    def start(self, cell_outputs: list) -> None:
        self.cell = cell_outputs

    def stream(self, name: str, text: str) -> None:
        last = self.cell[-1] if self.cell else None
        if last is not None and last.output_type == "stream" and last.name == name:
            last.text += text
        else:
            self.cell.append(nbformat.v4.new_output("stream", name=name, text=text))

    def display(self, data: dict, metadata: dict | None, display_id: str | None, update: bool,
                kind: str = "display_data", count: int | None = None) -> None:
        if kind == "execute_result":
            output = nbformat.v4.new_output(kind, data=data, metadata=metadata or {}, execution_count=count)
        else:
            output = nbformat.v4.new_output(kind, data=data, metadata=metadata or {})
        if update:
            for index in self.by_display_id.get(display_id, []):
                if index < len(self.cell):
                    self.cell[index] = output
            return
        if display_id is not None:
            self.by_display_id.setdefault(display_id, []).append(len(self.cell))
        self.cell.append(output)

    def clear(self) -> None:
        self.cell.clear()
        self.by_display_id.clear()


OUTPUTS = _Outputs()


class _Stream(io.TextIOBase):
    """sys.stdout / sys.stderr while a cell runs: into the cell's outputs, and on to the log as it happens."""

    def __init__(self, name: str, echo):
        self.name, self.echo = name, echo

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        OUTPUTS.stream(self.name, text)
        self.echo.write(text)
        self.echo.flush()
        return len(text)

    def flush(self) -> None:
        self.echo.flush()


class _Publisher(DisplayPublisher):
    def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kwargs):
        OUTPUTS.display(data, metadata, (transient or {}).get("display_id"), update)

    def clear_output(self, wait=False):
        OUTPUTS.clear()


class _ResultHook(DisplayHook):
    """The last expression's value as the cell's execute_result (rich formats included), not a printed "Out[n]"."""

    def write_output_prompt(self):
        pass

    def write_format_data(self, format_dict, md_dict=None):
        OUTPUTS.display(format_dict, md_dict, None, False, kind="execute_result", count=self.prompt_count)

    def finish_displayhook(self):
        pass


class _Shell(InteractiveShell):
    displayhook_class = Type(_ResultHook)
    display_pub_class = Type(_Publisher)
    keeps_a_notebook = True    # utils.plotting.in_notebook: figures are displayed, as in a kernel, not saved as files

    def enable_gui(self, gui=None):
        pass                   # inline figures need no event loop


class _ChapterCompiler(CachingCompiler):
    """Compiles each cell under the chapter's own file name (its lines padded to where the cell stands in the file),
    so tracebacks and `make verify`'s first failure name the chapter's real line."""

    filename = "<chapter>"

    def cache(self, transformed_code, number=0, raw_code=None):
        return self.filename


def _cell_lines(text: str, cells: list) -> list[int]:
    """The line (1-based) of ``text`` where each code cell's source starts (1 where it cannot be found)."""
    lines, position = [], 0
    for cell in cells:
        found = text.find(cell.source, position) if cell.source else -1
        if found < 0:
            lines.append(1)
            continue
        lines.append(text.count("\n", 0, found) + 1)
        position = found + len(cell.source)
    return lines


def execute(source: Path, output: Path, profile_name: str) -> bool:
    """Run ``source`` cell by cell, write it with its outputs to ``output``; True when every cell ran."""
    notebook = jupytext.read(source)
    notebook.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    starts = _cell_lines(source.read_text(), code_cells)
    shell = _Shell.instance()
    shell.compile = _ChapterCompiler()
    shell.compile.filename = str(source.resolve())
    shell.InteractiveTB.set_mode(mode="Plain")     # "Traceback (most recent call last)", as a script's
    shell.colors = "nocolor"
    shell.enable_matplotlib("inline")
    echo_out, echo_err = sys.stdout, sys.stderr
    start, completed = time.perf_counter(), False
    try:
        for number, (cell, line) in enumerate(zip(code_cells, starts), 1):
            cell.outputs, cell.execution_count = [], number
            OUTPUTS.start(cell.outputs)
            sys.stdout, sys.stderr = _Stream("stdout", echo_out), _Stream("stderr", echo_err)
            try:
                result = shell.run_cell("#\n" * (line - 1) + cell.source, store_history=True)
            finally:
                sys.stdout, sys.stderr = echo_out, echo_err
            if not result.success:
                if isinstance(result.error_in_exec, KeyboardInterrupt):
                    raise KeyboardInterrupt
                break
        else:
            completed = True
    finally:
        _write(notebook, output, source, profile_name, time.perf_counter() - start, completed)
    return completed


def _write(notebook, output: Path, source: Path, profile_name: str, seconds: float, completed: bool) -> None:
    for cell in notebook.cells:
        for stream in (o for o in cell.get("outputs", []) if o.output_type == "stream"):
            stream.text = terminal_text(stream.text)
    try:
        from ipywidgets import Widget

        notebook.metadata["widgets"] = {WIDGET_STATE: Widget.get_manager_state(drop_defaults=True)}
    except ImportError:
        pass
    notebook.metadata[METADATA_KEY] = {
        "profile": profile_name, "device": results.read(source.stem, profile_name).get("device", "unknown device"),
        "executed": datetime.date.today().isoformat(), "seconds": round(seconds), "code_sha256": code_hash(notebook),
        "completed": completed}       # False: a cell failed or Ctrl-C came; the book never shows such a run
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    nbformat.write(notebook, partial)
    partial.replace(output)     # atomically: a reader never sees half a notebook


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", type=Path, help="the chapter's jupytext source, chapters/<name>.py")
    parser.add_argument("--output", type=Path, required=True, help="where the executed notebook is written")
    args = parser.parse_args(argv)
    if not args.source.is_file():
        parser.error(f"{args.source} is not a file: give a chapter's source, e.g. chapters/01a_convolution_by_hand.py")
    from ..runtime import profile

    return 0 if execute(args.source, args.output, profile()) else 1


if __name__ == "__main__":
    sys.exit(main())
