"""`utils.course.bench`'s table handling and the speedrun's rows (the benchmarks themselves train models: `make bench`,
not the tests; the speedrun is climbed here only with a tiny model, for its rows)."""

import pytest
import torch

from utils import speed
from utils.course import bench


def row(name, result):
    return {"benchmark": name, "what": "w", "device": "d", "train s": "1", "result": result, "gpu target": "t",
            "throughput": "x"}


def test_merge_replaces_rows_of_the_same_benchmark_and_keeps_the_others():
    text = f"intro\n{bench.START}\nold\n{bench.END}\nrest\n"
    first = bench.merge_table(text, [row("vit", "a"), row("resnet", "b")], "2026-01-01")
    second = bench.merge_table(first, [row("vit", "c")], "2026-01-02")
    body = second.split(bench.START)[1].split(bench.END)[0]
    lines = [line for line in body.splitlines() if line.startswith("| ") and "benchmark" not in line]
    assert [line.split("|")[1].strip() for line in lines] == ["resnet", "vit"]   # BENCHMARKS order
    assert "| c |" in lines[1] and "| b |" in lines[0] and "old" not in body and "2026-01-02" in body
    assert second.startswith("intro\n") and second.endswith(f"{bench.END}\nrest\n")


def test_merge_without_markers_says_what_is_missing():
    with pytest.raises(ValueError, match="bench:start"):
        bench.merge_table("no markers", [row("vit", "a")], "2026-01-01")


def test_unknown_benchmark_lists_the_known_ones():
    with pytest.raises(ValueError, match="choose from resnet, vit"):
        bench.run(["nope"])


# ------------------------------------------------------------------------------------------------- the speedrun
SETTINGS = dict(width=4, batch=16, rung_steps=1, rung_images=64, workers=0, compile=False, train=64, test=32,
                epochs=1, lr=1e-2, ema=0.9)


def measured(images_per_second, compile_s=0.0):
    return {"images_per_second": images_per_second, "first_step_extra_s": compile_s, "graphs_cached": 1,
            "graphs_compiled": 1}


def trained(acc, compile_s=0.0, train_s=10.0):
    return {"acc": acc, "ema_acc": acc - 0.01, "tta_acc": acc + 0.01, "train_s": train_s,
            "first_step_extra_s": compile_s, "graphs_cached": 0, "graphs_compiled": 2, "images": 1000}


def test_speedrun_rows_give_each_rung_its_speed_up_over_the_plain_dataloader():
    rungs = speed.speedrun_ladder("cpu", 16)
    ladder = [(rung, measured(100.0 * (i + 1), compile_s=40.0 if rung.compile else 0.1))
              for i, rung in enumerate(rungs)]
    rows = bench.speedrun_rows("cpu", SETTINGS, ladder, trained(0.80), train_size=64, test_size=32)
    assert [r["benchmark"] for r in rows] == [f"speedrun cpu · {r.name}" for r in rungs] + ["speedrun cpu · recipe"]
    assert all(set(r) == set(bench.COLUMNS) - {"device"} for r in rows)
    assert rows[0]["result"] == "1.0× the plain DataLoader" and rows[0]["throughput"] == "100 images/s"
    assert rows[1]["result"] == "2.0× the plain DataLoader" and "1 thread," in rows[1]["what"]
    compiled = next(r for rung, r in zip(rungs, rows) if rung.compile)
    assert compiled["result"].endswith("; compile 40.0 s, 1 of 2 graphs from Inductor's on-disk cache"), \
        "compilation is shown apart from the steady state, with what the cache saved"
    assert all("compile" not in r["result"] for rung, r in zip(rungs, rows) if not rung.compile)
    recipe = rows[-1]
    assert recipe["train s"] == "10.0" and "94% not reached (0.8100)" in recipe["result"]
    assert "test acc 0.8000, EMA 0.7900, + flip TTA 0.8100 (32 test images)" in recipe["result"]
    assert "≤ 10 s of training" in recipe["gpu target"] and "5×" in rows[0]["gpu target"]


def test_gpu_speedrun_rows_show_compile_apart_and_the_time_to_94_percent():
    rungs = speed.speedrun_ladder("cuda", 512)   # the GPU ladder is built without a GPU
    assert [r.name for r in rungs] == ["plain DataLoader", "data on device", "+ channels_last + bf16",
                                       "+ torch.compile", "+ CUDA graphs", "+ batch ×4"]
    assert all(r.bf16 and r.channels_last for r in rungs[2:]) and rungs[-1].batch == 2048
    ladder = [(rung, measured(1000.0 * (i + 1), compile_s=25.0)) for i, rung in enumerate(rungs)]
    ladder[4] = (rungs[4], {"error": bench._failure(RuntimeError("CUDA graphs unsupported | here\nmore"))})
    rows = bench.speedrun_rows("gpu", bench.SPEEDRUN_SETTINGS["gpu"], ladder, trained(0.945, 12.0, 20.0),
                               train_size=60_000, test_size=10_000)
    graphs = rows[4]
    assert graphs["result"] == "failed: RuntimeError: CUDA graphs unsupported \\| here" and graphs["throughput"] == "—"
    assert rows[5]["result"].startswith("6.0× the plain DataLoader; compile 25.0 s, 1 of 2 graphs")
    recipe = rows[-1]
    assert recipe["train s"] == "8.0 + 12.0 compile" and "bf16, torch.compile" in recipe["what"]
    assert recipe["result"].endswith("≥ 94% in 8.0 s of training, 20.0 s with compile; compile 12.0 s, 0 of 2 "
                                     "graphs from Inductor's on-disk cache")
    assert recipe["throughput"] == "125 images/s"   # 1000 images in 8 s of training


def test_speedrun_rows_without_a_baseline_or_a_recipe_say_so():
    rungs = speed.speedrun_ladder("cpu", 16, compile=False)
    ladder = [(rungs[0], {"error": "failed: OSError: no workers"}), (rungs[1], measured(50.0))]
    rows = bench.speedrun_rows("cpu", SETTINGS, ladder, {"error": "failed: ValueError: x"}, train_size=1, test_size=1)
    assert rows[1]["result"] == "no speed-up: the plain DataLoader failed"
    assert rows[-1]["result"] == "failed: ValueError: x" and rows[-1]["train s"] == "—"
    with pytest.raises(ValueError, match="plain DataLoader"):
        bench.speedrun_rows("cpu", SETTINGS, ladder[1:], {"error": "x"}, train_size=1, test_size=1)


def fake_split(n):
    generator = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=generator), torch.arange(n) % 10


def test_speedrun_on_the_cpu_reports_a_failing_rung_and_climbs_the_rest(monkeypatch):
    climb = speed.measure_rung

    def channels_last_breaks(rung, *args, **kwargs):
        if rung.name == "+ channels_last":
            raise RuntimeError("no NHWC kernel")
        return climb(rung, *args, **kwargs)

    monkeypatch.setattr(speed, "measure_rung", channels_last_breaks)
    rows = bench.speedrun(torch.device("cpu"), SETTINGS, fake_split(96), fake_split(32))
    results = {r["benchmark"]: r["result"] for r in rows}
    assert results["speedrun cpu · + channels_last"] == "failed: RuntimeError: no NHWC kernel"
    assert results["speedrun cpu · + a thread per core"].endswith("× the plain DataLoader")
    assert "(32 test images)" in results["speedrun cpu · recipe"] and "64 images" in rows[-1]["what"]


def test_merge_keeps_the_gpu_and_cpu_ladders_side_by_side():
    def speedrun_row(kind, part, result):
        return {**row(bench.speedrun_key(kind, part), result), "device": kind}

    stale = "| speedrun cpu · a rung no longer climbed | w | d | 1 | r | t | x |"   # dropped: not in the ladder
    text = f"{bench.START}\n{stale}\n{bench.END}\n"
    text = bench.merge_table(text, [row("resnet", "a"), speedrun_row("cpu", "recipe", "cpu recipe")], "2026-01-01")
    text = bench.merge_table(text, [speedrun_row("gpu", "plain DataLoader", "gpu plain"),
                                    speedrun_row("gpu", "recipe", "gpu recipe")], "2026-01-02")
    body = text.split(bench.START)[1].split(bench.END)[0]
    firsts = [line.split("|")[1].strip() for line in body.splitlines() if line.startswith("| ")][1:]
    assert firsts == ["resnet", "speedrun gpu · plain DataLoader", "speedrun gpu · recipe", "speedrun cpu · recipe"]
