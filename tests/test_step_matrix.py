"""A training step of every convolutional model family, on augmented and channels_last batches, under each oneDNN
instruction set × thread count a learner's CPU may give: each configuration in its own process (tests/step_matrix.py),
so a native crash or hang fails this test, naming the configuration, the signal and the model, and the rest of the
suite runs on. Before the fix in utils/data.py and utils/runtime.py, ONEDNN_MAX_CPU_ISA=AVX2 aborted on the first
ResNet step with one thread and hung with two (torch 2.14.1)."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STEPS = 3            # steps per model and layout: the corruption showed within the first step or two
TIMEOUT_S = 240      # a hang is a failure, not a stalled suite


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("isa", [None, "AVX2"], ids=["isa-default", "isa-AVX2"])
def test_a_training_step_of_every_conv_family_survives(isa, threads):
    env = {k: v for k, v in os.environ.items() if k not in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")}
    env.update({"ONEDNN_MAX_CPU_ISA": isa} if isa else {})
    config = f"ONEDNN_MAX_CPU_ISA={isa or 'unset'}, {threads} thread(s)"
    command = [sys.executable, str(ROOT / "tests" / "step_matrix.py"), str(threads), str(STEPS)]
    try:
        run = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
        out, ending = run.stdout, None
        if run.returncode < 0:
            ending = f"killed by {signal.Signals(-run.returncode).name}"
        elif run.returncode:
            ending = f"exit status {run.returncode}: {run.stderr.strip().splitlines()[-1:]}"
    except subprocess.TimeoutExpired as hung:
        out = hung.stdout.decode() if isinstance(hung.stdout, bytes) else hung.stdout or ""
        ending = f"no answer within {TIMEOUT_S} s (hung)"
    started = [line[len("start "):] for line in out.splitlines() if line.startswith("start ")]
    assert ending is None, f"{config}: {ending} in the training step of {started[-1] if started else 'no model'}"
    assert out.count("\nok ") == len(started), f"{config}: a step started but did not finish:\n{out}"


def test_a_test_that_kills_its_interpreter_fails_alone_and_the_suite_goes_on(tmp_path):
    """`make test-unit` runs under pytest-xdist: a worker killed by a signal fails its test, a new worker runs the
    rest, and the summary counts both."""
    (tmp_path / "test_crash.py").write_text(
        "import os, signal\n\n"
        "def test_segfaults():\n    os.kill(os.getpid(), signal.SIGSEGV)\n\n"
        + "".join(f"def test_after_it_{i}():\n    assert True\n\n" for i in range(4)))
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "2", "--dist", "worksteal",  # as make test-unit
                          "-p", "no:cacheprovider", str(tmp_path)],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert "1 failed, 4 passed" in run.stdout, run.stdout + run.stderr
    assert "test_segfaults" in run.stdout and "crashed" in run.stdout, run.stdout
