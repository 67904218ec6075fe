"""pytest plugin for `make test-notebooks`: more patience for a cell's last outputs, and no cell with more outputs
than JupyterLab shows.

- After the kernel reports a cell done, nbval waits a hard-coded 5 s for each further output message; on a busy
  2-core CI machine a long cell's trailing progress-bar messages can take longer, failing a cell that ran fine
  ("Timeout of 5 seconds exceeded waiting for output"). A cell's own run time stays bounded by --nbval-cell-timeout.
- A cell that emits many outputs hides its result behind JupyterLab's "Show more outputs". The browser test counts
  outputs in JupyterLab for the chapters with explorers; this counts them for every chapter, in the smoke run that
  executes them anyway. nbval merges a cell's stream outputs into one per stream, so this count is a lower bound
  of JupyterLab's (which merges only consecutive ones); every progress bar and figure counts one.
- With ``--leave-chapters-to-the-browser`` (what `make test` passes), no chapter is run here when Chromium is
  found: the browser stage that follows runs each of them top to bottom in JupyterLab, failing on any failed cell
  or crowded output (and trying the explorers), so running them here too would execute them twice; this stage then
  passes with nothing run. Without Chromium the browser stage is skipped, and every chapter runs here.
"""

from pathlib import Path

import pytest

OUTPUT_TIMEOUT_S = 60
MAX_OUTPUTS = 20          # the browser test reads it too (tests/test_browser.py)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    left = set(_left_to_the_browser(config))
    if left:
        config.hook.pytest_deselected(items=[i for i in items if Path(str(i.fspath)).stem in left])
        items[:] = [i for i in items if Path(str(i.fspath)).stem not in left]
    for item in items:
        if hasattr(item, "output_timeout"):  # nbval's notebook cells
            item.output_timeout = OUTPUT_TIMEOUT_S


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    result = yield
    outputs = getattr(item, "test_outputs", None) or []
    if len(outputs) > MAX_OUTPUTS:
        kinds = sorted({output.get("output_type", "?") for output in outputs})
        raise AssertionError(f"{item.name} emits {len(outputs)} outputs ({', '.join(kinds)}), more than "
                             f"{MAX_OUTPUTS}: JupyterLab would hide its result behind 'Show more outputs'")
    return result


def pytest_addoption(parser):
    parser.addoption("--leave-chapters-to-the-browser", action="store_true",
                     help="skip the chapters the browser stage runs (only when Chromium is found)")


def _left_to_the_browser(config) -> list[str]:
    """The chapters the browser stage will run, when asked to leave them to it and Chromium is found."""
    if not config.getoption("--leave-chapters-to-the-browser"):
        return []
    from test_browser import CHAPTER_NAMES, chromium_path

    return CHAPTER_NAMES if chromium_path() else []


def pytest_sessionfinish(session, exitstatus):
    """Nothing left to run here because the browser stage runs it all is a pass, not pytest's "no tests" (5)."""
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED and _left_to_the_browser(session.config):
        session.exitstatus = pytest.ExitCode.OK


def pytest_report_header(config):
    left = _left_to_the_browser(config)
    if left:
        return f"{len(left)} chapters are left to the browser stage, which runs each: {' '.join(left)}"
    if config.getoption("--leave-chapters-to-the-browser"):
        return "no Chromium: the browser stage will be skipped, so every chapter runs here"
    return None
