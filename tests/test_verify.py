"""`make verify` (utils.course.verify): chapters run as scripts, their failures, time-outs and headline figures in one table."""

import shutil
import signal
import textwrap
import threading
import time

import pytest

from utils import plotting, results
from utils.course import verify

PASSING = """
    from utils import start_chapter
    from utils.results import report
    start_chapter("{name}")
    report("test accuracy", 0.9123, bar=0.9)
    report("Fréchet distance", 12.5, bar=20.0, higher_is_better=False, digits=1)
"""
FAILING = """
    from utils import start_chapter
    start_chapter("{name}")
    accuracy = 0.5
    assert accuracy >= 0.9, f"LeNet-5 reached only {{accuracy:.3f}} (bar 0.9)"
"""
HANGING = """
    import time
    time.sleep(60)
"""


@pytest.fixture
def chapters(tmp_path):
    """A folder of three tiny chapters; their output folders are removed afterwards."""
    names = {"90_passes": PASSING, "91_fails": FAILING, "92_hangs": HANGING}
    for name, body in names.items():
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(body.format(name=name)))
    yield tmp_path
    for name in names:
        shutil.rmtree(plotting.OUTPUTS / name, ignore_errors=True)


def run(name, folder, limit=60):
    return verify.run_chapter(name, "smoke", limit=limit, folder=folder, log_dir=folder / "logs")


def test_a_passing_chapter_reports_its_headline_figures(chapters):
    outcome = run("90_passes", chapters)
    assert outcome.ok and outcome.failure == ""
    assert [f["name"] for f in outcome.figures] == ["test accuracy", "Fréchet distance"]
    assert outcome.device.startswith("CPU") and outcome.cpu_seconds > 0
    row = verify.table_rows([outcome])[0]
    assert "test accuracy 0.912 (bar ≥ 0.900); Fréchet distance 12.5 (bar ≤ 20.0)" == row[6]


def test_a_failing_assert_is_reported_with_its_line_and_message(chapters):
    outcome = run("91_fails", chapters)
    assert outcome.status == "failed"
    assert outcome.failure == "line 5: AssertionError: LeNet-5 reached only 0.500 (bar 0.9)"


def test_a_chapter_past_its_limit_is_stopped(chapters):
    outcome = run("92_hangs", chapters, limit=2)
    assert outcome.status == "timed out" and outcome.wall_seconds < 30
    assert "stopped after 2 s" in outcome.failure


WAITS = """
    import pathlib, signal, time
    if {ignore_ctrl_c}:
        signal.signal(signal.SIGINT, signal.SIG_IGN)   # a chapter that will not stop by itself
    pathlib.Path({marker!r}).touch()
    time.sleep(60)
"""


@pytest.fixture
def terminal_ctrl_c():
    """Python's own Ctrl-C handler during the test, as in a terminal, restored after: an earlier test in the same
    worker may have left another one (a library that ignores SIGINT), and then no KeyboardInterrupt would come."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("ignore_ctrl_c", [False, True])
def test_ctrl_c_stops_the_running_chapter_at_once_and_prints_the_table_so_far(tmp_path, monkeypatch, capsys,
                                                                               ignore_ctrl_c, terminal_ctrl_c):
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("Ctrl-C reaches the main thread only")
    monkeypatch.setattr(verify, "OUTPUTS", tmp_path / "outputs")
    monkeypatch.setattr(verify, "GRACE_SECONDS", 1)
    marker = tmp_path / "started"
    bodies = {"95_quick": "print('done')", "96_waits": WAITS.format(ignore_ctrl_c=ignore_ctrl_c, marker=str(marker)),
              "97_never": "print('never runs')"}
    for name, body in bodies.items():
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(body))

    def press_ctrl_c():   # as the terminal would, once the second chapter runs
        deadline = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

    threading.Thread(target=press_ctrl_c, daemon=True).start()
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        verify.verify("smoke", list(bodies), jobs=1, limit=120, folder=tmp_path)
    assert marker.exists(), "the waiting chapter never started (its marker file is missing)"
    assert time.monotonic() - start < 30     # not the 120 s limit
    out = capsys.readouterr().out
    assert "96_waits: interrupted" in out and "| 96_waits | interrupted |" in out
    assert "| 95_quick | passed |" in out and "97_never" not in out and "1 chapter(s) not run" in out
    assert not (tmp_path / "outputs" / "verify-smoke.md").exists()


def test_main_exits_130_on_ctrl_c(monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(verify, "verify", interrupted)
    assert verify.main(["--profile", "smoke", "--chapters", "01b"]) == 130


def test_first_failure_takes_the_last_exception_of_the_log():
    log = textwrap.dedent("""\
        training...
        Traceback (most recent call last):
          File "/repo/chapters/03a_attention.py", line 365, in <module>
            assert found, "some head should read the mirrored position"
        AssertionError: some head should read the mirrored position
    """)
    assert verify.first_failure(log, "03a_attention.py") == "line 365: AssertionError: some head should read the mirrored position"
    assert verify.first_failure("all good\n", "03a_attention.py") == ""


def test_chapter_selection_by_prefix():
    names = verify.chapter_names("01b 04")
    assert names == ["01b_cnn_architectures", "04_detection"]
    assert len(verify.chapter_names("")) >= 11
    with pytest.raises(ValueError, match="no chapter starts with '99'"):
        verify.chapter_names("99")


def test_readme_rows_are_merged_by_chapter():
    text = "intro\n<!-- a -->\nold\n<!-- b -->\nrest\n"
    columns = ("chapter", "value")
    first = results.merge_block(text, "<!-- a -->", "<!-- b -->", "heading", columns,
                                {"x": ["x", "1"], "y": ["y", "2"]}, ["x", "y"])
    second = results.merge_block(first, "<!-- a -->", "<!-- b -->", "heading", columns, {"y": ["y", "3"]}, ["x", "y"])
    assert "| x | 1 |" in second and "| y | 3 |" in second and "| y | 2 |" not in second and "old" not in second
    with pytest.raises(ValueError, match="add the two markers"):
        results.merge_block("none", "<!-- a -->", "<!-- b -->", "h", columns, {}, [])


def test_report_refuses_nan_and_non_numbers(tmp_path, monkeypatch):
    monkeypatch.setattr(plotting, "OUTPUTS", tmp_path)
    plotting.set_chapter("scratch")
    results.start("scratch")
    with pytest.raises(ValueError, match="NaN"):
        results.report("accuracy", float("nan"))
    with pytest.raises(TypeError, match="must be a number"):
        results.report("accuracy", "high")
    assert results.report("accuracy", 0.5) == 0.5
    assert results.read("scratch", results.profile())["figures"][0]["value"] == 0.5


def test_measured_runtimes_read_the_readme_tables(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("""
<!-- verify:cpu:start -->
Measured by `make verify PROFILE=cpu`; last run on 2026-11-26.

| chapter | status | wall s | CPU s | budget s | device | headline figures | first failure |
|---|---|---|---|---|---|---|---|
| 01b_cnn_architectures | passed | 2006 | 477 | 600 | CPU (1 thread) | x 0.9 | — |
<!-- verify:cpu:end -->
""")
    measured = results.measured_runtimes("01b_cnn_architectures", readme)
    assert measured == {"cpu": {"status": "passed", "wall": 2006.0, "cpu": 477.0, "budget": 600.0,
                                "device": "CPU (1 thread)", "date": "2026-11-26"}}
    assert results.measured_runtimes("04_detection", readme) == {}
