"""utils.parallel: every mode on 2 gloo processes agrees with one process; a broken run is caught."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from utils import parallel

REPO = Path(__file__).resolve().parents[1]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


def torchrun(*args, tmp_path=None):
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1")  # gloo on CPU, as in CI
    return subprocess.run([*TORCHRUN, "-m", "utils.parallel", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=180)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    path = tmp_path_factory.mktemp("parallel") / "results.json"
    run = torchrun("--mode", "all", "--check", "--steps", "3", "--json", str(path))
    assert run.returncode == 0, run.stdout + run.stderr
    return {(r["mode"], r.get("schedule")): r for r in json.loads(path.read_text())}


@pytest.mark.parametrize("key", [("ddp", None), ("fsdp", None), ("pipeline", "GPipe"), ("pipeline", "1F1B"),
                                 ("tensor", None)])
def test_each_mode_matches_one_process(results, key):
    r = results[key]
    assert r["processes"] == 2 and r["backend"] == "gloo" and len(r["losses"]) == 3
    assert r["agrees"] and r["largest_difference"] <= parallel.TOLERANCE
    assert r["losses"] == pytest.approx(r["reference_losses"], abs=parallel.TOLERANCE)


def test_fsdp_holds_half_the_training_state(results):
    ddp, fsdp = results[("ddp", None)], results[("fsdp", None)]
    assert ddp["bytes_per_process"] == ddp["bytes_unsharded"]
    assert fsdp["bytes_per_process"] == pytest.approx(fsdp["bytes_unsharded"] / 2, rel=0.01)


def test_pipeline_reports_formula_and_timeline(results):
    r = results[("pipeline", "1F1B")]
    assert r["bubble_formula"] == pytest.approx(1 / 5)
    assert len(r["idle_per_stage"]) == 2 and all(0 <= v < 1 for v in r["idle_per_stage"])
    kinds = [sorted((e[0], e[1]) for e in stage) for stage in r["timeline"]]
    assert kinds[0] == kinds[1] == sorted((k, m) for k in "FB" for m in range(4)), "4 forwards, 4 backwards each"


def test_tensor_parallel_layer_with_gathered_output(results):
    assert results[("tensor", None)]["one_layer_difference"] <= parallel.TOLERANCE


def test_sabotaged_ddp_fails_the_check():
    run = torchrun("--mode", "ddp", "--check", "--sabotage", "--steps", "2")
    assert run.returncode != 0
    assert "DISAGREES" in run.stdout and "largest difference" in run.stdout


def test_bubble_fraction():
    assert parallel.bubble_fraction(1, 8) == 0
    assert parallel.bubble_fraction(4, 4) == pytest.approx(3 / 7)
    assert parallel.bubble_fraction(2, 64) < parallel.bubble_fraction(2, 4)
    with pytest.raises(ValueError, match="microbatches"):
        parallel.bubble_fraction(2, 0)


def test_stage_slices_cover_the_model_in_order():
    model = parallel.make_mlp(hidden=8, depth=4)
    for stages in (1, 2, 3, 5):
        parts = parallel._stage_slices(model, stages)
        assert parts[0].start == 0 and parts[-1].stop == len(model) and len(parts) == stages
        assert all(a.stop == b.start for a, b in zip(parts, parts[1:]))
    with pytest.raises(ValueError, match="at most 5 pipeline stages"):
        parallel._stage_slices(model, 6)


def test_max_difference():
    a = {"w": torch.zeros(2, 2)}
    assert parallel.max_difference(a, {"w": torch.full((2, 2), 0.5)}) == 0.5
    with pytest.raises(ValueError, match="different tensors"):
        parallel.max_difference(a, {"v": torch.zeros(2, 2)})
    with pytest.raises(ValueError, match="shape"):
        parallel.max_difference(a, {"w": torch.zeros(3)})


def test_main_outside_torchrun_says_how_to_run(monkeypatch, capsys):
    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(SystemExit):
        parallel.main(["--mode", "ddp"])
    assert "torchrun --nproc_per_node 2" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parallel.main(["--mode", "zero"])
    assert "choose from ddp" in capsys.readouterr().err


@pytest.mark.parametrize("schedule", parallel.SCHEDULES)
@pytest.mark.parametrize("stages,microbatches", [(2, 1), (2, 4), (4, 4), (4, 8), (3, 5)])
def test_simulated_schedule_idle_equals_the_bubble_formula(schedule, stages, microbatches):
    events = parallel.ideal_schedule(stages, microbatches, schedule)
    assert all(sorted((k, i) for k, i, *_ in stage) == sorted((k, i) for k in "FB" for i in range(microbatches))
               for stage in events), "every stage runs each forward and backward once"
    idle = parallel.idle_fractions(events)
    assert idle == pytest.approx([parallel.bubble_fraction(stages, microbatches)] * stages)


def test_1f1b_holds_fewer_activations_than_gpipe():
    def most_in_flight(order):
        live = peak = 0
        for kind, _ in order:
            live += 1 if kind == "F" else -1
            peak = max(peak, live)
        return peak
    assert most_in_flight(parallel.stage_order(0, 4, 8, "GPipe")) == 8
    assert most_in_flight(parallel.stage_order(0, 4, 8, "1F1B")) == 4
    with pytest.raises(ValueError, match="schedule"):
        parallel.stage_order(0, 2, 2, "zero-bubble")


def test_schedule_figure_names_both_numbers():
    import matplotlib.pyplot as plt
    fig = parallel.schedule_figure(3, 6, "GPipe")
    assert "simulated" in fig.axes[0].get_title() and "25.0%" in fig.axes[0].get_title()
    plt.close(fig)
    with pytest.raises(ValueError, match="microbatches"):
        parallel.schedule_figure(3, 0, "GPipe")
