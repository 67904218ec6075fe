"""utils.speed: measurement helpers, FLOP/byte counting, ladder rungs, fused vs unfused blocks, int8."""

from dataclasses import replace

import pytest
import torch
from torch import nn

from utils import speed
from utils.measuring import count_parameters, model_bytes


def test_measure_times_every_repeat_and_rejects_bad_arguments():
    calls = []
    result = speed.measure(lambda: calls.append(1), warmup=2, repeats=3)
    assert len(calls) == 5 and len(result["times"]) == 3 and result["best"] <= result["median"]
    assert result["first"] is not None
    with pytest.raises(ValueError, match="repeats"):
        speed.measure(lambda: None, repeats=0)


def test_profile_table_counts_the_ops():
    x = torch.randn(8, 8)
    table, averages = speed.profile_table(lambda: x @ x, steps=3)
    counts = {a.key: a.count for a in averages}
    assert counts["aten::mm"] == 3 and "aten::mm" in table


def test_find_syncs_needs_a_gpu():
    if torch.cuda.is_available():
        syncs = speed.find_syncs(lambda: torch.ones(2, device="cuda").sum().item())
        assert syncs, "item() synchronises"
    else:
        with pytest.raises(RuntimeError, match="CUDA"):
            speed.find_syncs(lambda: None)


def test_layer_costs_match_the_formulas():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 36, 5))
    x = torch.randn(2, 3, 6, 6)
    rows = {r["layer"]: r for r in speed.layer_costs(model, x)}
    assert rows["0"]["flops"] == 2 * 2 * 8 * 36 * 3 * 9          # 2 × batch × outputs × (C_in × k²)
    assert rows["0"]["bytes"] == 4 * (x.numel() + 2 * 8 * 36 + 8 * 3 * 9)
    assert rows["1"]["flops"] == 0 and rows["1"]["intensity"] == 0
    assert rows["3"]["flops"] == 2 * 2 * 8 * 36 * 5
    with pytest.raises(TypeError):
        speed.layer_costs(model, "x")


def test_machine_balance_is_positive():
    balance = speed.machine_balance(size=128)
    assert balance["flops_per_second"] > 0 and balance["bytes_per_second"] > 0
    assert balance["ridge"] == pytest.approx(balance["flops_per_second"] / balance["bytes_per_second"])


def test_rung_and_recipe_reject_bad_settings():
    with pytest.raises(ValueError, match="plain"):
        speed.Rung("x", loader="disk")
    with pytest.raises(ValueError, match="reduce-overhead"):
        speed.Rung("x", cuda_graphs=True)
    with pytest.raises(ValueError, match="schedule"):
        speed.Recipe("x", schedule="cosine")
    with pytest.raises(ValueError, match="label_smoothing"):
        speed.Recipe("x", label_smoothing=1.5)


def tiny_model():
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 10))


def fake_data(n=96):
    generator = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=generator), torch.arange(n) % 10


@pytest.mark.parametrize("rung", [speed.Rung("plain", loader="plain", batch=16),
                                  speed.Rung("device", batch=16, channels_last=True, threads=1)])
def test_measure_rung_reports_throughput(rung):
    images, labels = fake_data()
    threads = torch.get_num_threads()
    result = speed.measure_rung(rung, tiny_model, images, labels, device="cpu", steps=3, workers=0)
    assert result["images_per_second"] > 0 and result["first_step_extra_s"] >= 0
    assert result["graphs_cached"] == result["graphs_compiled"] == 0, "an eager rung compiles nothing"
    assert torch.get_num_threads() == threads, "the thread count is restored"
    longer = speed.measure_rung(rung, tiny_model, images, labels, device="cpu", steps=10, workers=0)
    assert longer["images_per_second"] > 0, "more steps than one epoch holds: the loader starts a new epoch"
    with pytest.raises(ValueError, match="no full batch"):
        speed.measure_rung(replace(rung, batch=200), tiny_model, images, labels, device="cpu", steps=1, workers=0)


def test_gpu_rungs_refused_on_cpu():
    images, labels = fake_data()
    with pytest.raises(ValueError, match="bf16"):
        speed.measure_rung(speed.Rung("bf16", bf16=True), tiny_model, images, labels, device="cpu", steps=1)


def test_train_recipe_reports_every_accuracy():
    images, labels = fake_data()
    result = speed.train_recipe(speed.Recipe("ema", label_smoothing=0.1, ema=0.9), tiny_model, (images, labels),
                                (images, labels), device="cpu", epochs=1, batch=32, lr=1e-2)
    assert {"acc", "ema_acc", "tta_acc", "train_s"} <= set(result) and result["images"] == 96
    assert all(0 <= result[k] <= 1 for k in ("acc", "ema_acc", "tta_acc"))
    assert 0 <= result["first_step_extra_s"] <= result["train_s"]
    with pytest.raises(ValueError, match="no step to take"):
        speed.train_recipe(speed.Recipe("x"), tiny_model, (images, labels), (images, labels), device="cpu", epochs=0,
                           batch=32, lr=1e-2)


def test_train_recipe_ema_without_memory_is_the_last_weights():
    images, labels = fake_data()
    result = speed.train_recipe(speed.Recipe("ema", ema=1e-9), tiny_model, (images, labels), (images, labels),
                                device="cpu", epochs=1, batch=32, lr=1e-2)
    assert result["ema_acc"] == result["acc"]


def test_speedrun_ladder_climbs_one_change_at_a_time():
    cpu = speed.speedrun_ladder("cpu", 64)
    assert cpu[0].loader == "plain" and all(r.loader == "device" for r in cpu[1:])
    assert [r.threads for r in cpu[:3]] == [1, 1, 1] and cpu[-1].batch == 128
    assert not any(r.compile for r in speed.speedrun_ladder("cpu", 64, compile=False))
    gpu = speed.speedrun_ladder("cuda", 64)
    assert [r.name for r in gpu if r.cuda_graphs] == ["+ CUDA graphs", "+ batch ×4"]
    with pytest.raises(ValueError, match="batch"):
        speed.speedrun_ladder("cpu", 0)


def test_flip_tta_of_a_mirror_symmetric_model_changes_nothing():
    images, labels = fake_data()
    model = tiny_model()  # global pooling after a conv: not exactly symmetric, so make the kernel symmetric
    with torch.no_grad():
        model[0].weight.copy_((model[0].weight + model[0].weight.flip(3)) / 2)
    assert speed.accuracy(model, images, labels, flip_tta=True) == speed.accuracy(model, images, labels)


def test_fused_block_equals_unfused_in_every_sdpa_backend():
    from torch.nn.attention import sdpa_kernel
    torch.manual_seed(0)
    unfused = speed.UnfusedBlock(dim=32, heads=4, hidden=64).eval()
    fused = speed.FusedBlock(unfused).eval()
    x = torch.randn(2, 10, 32)
    backends = speed.sdpa_backends("cpu")
    assert "math" in backends
    for backend in backends.values():
        with sdpa_kernel(backend), torch.no_grad():
            torch.testing.assert_close(fused(x), unfused(x), atol=1e-5, rtol=1e-5)
    assert count_parameters(fused) == count_parameters(unfused)
    with pytest.raises(TypeError):
        speed.FusedBlock(nn.Linear(2, 2))


def test_int8_model_is_smaller_and_close():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    quantized = speed.quantize_int8(model)
    x = torch.randn(16, 64)
    assert model_bytes(quantized) < model_bytes(model) / 2.5
    assert (quantized(x) - model(x)).abs().max() < 0.05
    assert isinstance(model[0], nn.Linear), "the original model is left as it was"
