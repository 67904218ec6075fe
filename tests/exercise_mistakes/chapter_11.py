"""Chapter 11's exercises (11_speed_and_scale) done wrong, the way learners do: each entry of `CATALOGUE` is (exercise, mistaken function, the registered mistake its message must name)."""

import torch


def round_to_bfloat16_by_truncation(x):
    bits = x.view(torch.int32)
    return (bits & -65536).view(torch.float32)            # just drop the low half


def round_to_bfloat16_half_up(x):
    bits = x.view(torch.int32) + 0x8000                    # add half, then drop: ties go away from zero
    return (bits & -65536).view(torch.float32)


def round_to_bfloat16_eight_bits(x):
    bits = x.view(torch.int32)
    bits = bits + 0x3FFF + ((bits >> 15) & 1)              # kept 8 mantissa bits, counting the implicit one
    return (bits & -32768).view(torch.float32)


def round_to_bfloat16_on_the_value(x):
    step = 2.0 ** -7
    return torch.round(x / step) * step


def symmetric_int8_cast(x):
    scale = x.abs().max() / 127
    if scale == 0:
        scale = torch.tensor(1.0)
    return (x / scale).to(torch.int8), scale


def symmetric_int8_half_up(x):
    scale = x.abs().max() / 127
    if scale == 0:
        scale = torch.tensor(1.0)
    return torch.floor(x / scale + 0.5).to(torch.int8), scale


def symmetric_int8_from_max(x):
    scale = x.max() / 127
    if scale == 0:
        scale = torch.tensor(1.0)
    return torch.clamp(torch.round(x / scale), -128, 127).to(torch.int8), scale


def peak_activations_p_everywhere(stages, microbatches):
    return torch.tensor([[microbatches, min(stages, microbatches)] for _ in range(stages)])


def peak_activations_warmup_only(stages, microbatches):
    return torch.tensor([[microbatches, min(stages - s - 1, microbatches)] for s in range(stages)])


def peak_activations_uncapped(stages, microbatches):
    return torch.tensor([[microbatches, stages - s] for s in range(stages)])


CATALOGUE = [
    ("round_to_bfloat16", round_to_bfloat16_by_truncation, "truncated"),
    ("round_to_bfloat16", round_to_bfloat16_half_up, "ties away from zero"),
    ("round_to_bfloat16", round_to_bfloat16_eight_bits, "8 mantissa bits"),
    ("round_to_bfloat16", round_to_bfloat16_on_the_value, "fixed step"),
    ("symmetric_int8", symmetric_int8_cast, "truncated codes"),
    ("symmetric_int8", symmetric_int8_half_up, "halves rounded up"),
    ("symmetric_int8", symmetric_int8_from_max, "scale from the maximum"),
    ("peak_activations", peak_activations_p_everywhere, "p on every stage"),
    ("peak_activations", peak_activations_warmup_only, "warm-up forwards only"),
    ("peak_activations", peak_activations_uncapped, "not capped at m"),
]
