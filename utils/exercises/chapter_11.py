"""The exercises of Chapter 11 (11_speed_and_scale): their references, cases and known mistakes."""

import warnings
from functools import partial

import torch

from .. import parallel
from .base import Exercise, Mistake


def _bfloat16_cases():
    generator = torch.Generator().manual_seed(0)
    halfway = 1 + torch.tensor([1.0, 3.0, 5.0, 255.0]) * 2 ** -8     # exactly between two bfloat16 neighbours
    largest = torch.finfo(torch.float32).max
    return [(10 * torch.randn(5, 7, generator=generator),),
            (torch.cat([halfway, -halfway, 2 ** 20 * halfway]),),        # ties: to the even neighbour
            (torch.tensor([largest, -largest, 3.3e38, 3.4e38, 0.0, -0.0, 1e-30, float("inf")]),),  # overflow to inf
            (torch.tensor([[1 + 2.0 ** -8 + 2.0 ** -20]]),),              # one value just above a tie
            (torch.zeros(0),)]                                            # no values


def _bfloat16_bits(x, kept_bits=7, round_half_even=True, rounded=True):
    """float32 rounded to ``kept_bits`` stored mantissa bits through its bits (or truncated: ``rounded=False``)."""
    dropped = 23 - kept_bits
    bits = x.view(torch.int32)
    if rounded:
        half = 2 ** (dropped - 1)
        bits = bits + (half - 1 + ((bits >> dropped) & 1) if round_half_even else half)
    return (bits & -(2 ** dropped)).view(torch.float32)


BFLOAT16_MISTAKES = (
    Mistake("truncated", partial(_bfloat16_bits, rounded=False),
            "the 16 low bits are cut off (rounding toward zero): round to nearest first, adding 0x7FFF plus the "
            "lowest kept bit before clearing them"),
    Mistake("ties away from zero", partial(_bfloat16_bits, round_half_even=False),
            "a value exactly halfway is rounded away from zero (adding 0x8000): ties go to the even neighbour, "
            "add 0x7FFF plus the lowest kept bit"),
    Mistake("8 mantissa bits", partial(_bfloat16_bits, kept_bits=8),
            "8 mantissa bits are kept: bfloat16 stores 7 (8 bits of precision with the implicit one); the 16 low "
            "bits of float32 go"),
    Mistake("fixed step", lambda x: torch.round(x * 2 ** 7) / 2 ** 7,
            "the value is rounded to a fixed step of 2⁻⁷: the 7 bits are relative to each value's exponent, round "
            "its bits"),
)


def _int8_cases():
    generator = torch.Generator().manual_seed(1)
    halfway = torch.tensor([127.0, 0.5, 1.5, 2.5, -0.5, -2.5, -1.5, 126.5]) / 8    # scale 1/8: x / scale exact
    negative_heavy = torch.randn(4, 4, generator=generator)
    negative_heavy[2, 1] = -10.0                                                  # the largest magnitude is negative
    return [(torch.randn(6, 5, generator=generator),), (halfway,), (negative_heavy,),
            (torch.tensor([-2.0]),),                                              # one value
            (torch.zeros(3, 4),)]                                                 # all zero: scale 1


def _torch_symmetric_int8(x):
    """torch's per-tensor int8 quantisation with the symmetric scale max|x| / 127 (1 for an all-zero x)."""
    largest = x.abs().max()
    scale = largest / 127 if largest > 0 else torch.ones(())
    with warnings.catch_warnings():          # quantised tensors are deprecated in favour of torchao
        warnings.simplefilter("ignore")
        codes = torch.quantize_per_tensor(x, float(scale), 0, torch.qint8).int_repr()
    return codes, scale


def _int8_wrong(x, rounding=torch.round, magnitude=True):
    largest = x.abs().max() if magnitude else x.max()
    scale = largest / 127 if largest != 0 else torch.ones(())
    return rounding(x / scale).clamp(-128, 127).to(torch.int8), scale


INT8_MISTAKES = (
    Mistake("truncated codes", partial(_int8_wrong, rounding=torch.trunc),
            "the codes are truncated toward zero (a cast to int8 alone): round first, torch.round(x / scale)"),
    Mistake("halves rounded up", partial(_int8_wrong, rounding=lambda v: torch.floor(v + 0.5)),
            "halves are rounded up (floor(v + 0.5)): round them to the even integer, as torch.round and the int8 "
            "kernels do"),
    Mistake("scale from the maximum", partial(_int8_wrong, magnitude=False),
            "the scale comes from the largest value, not the largest magnitude: max|x| / 127, so that the most "
            "negative value fits too"),
)


def _pipeline_cases():
    return [(4, 8), (4, 2), (1, 3), (3, 3), (6, 1), (2, 5)]        # m < p, one stage, one micro-batch


def _held_by_schedule(stages, microbatches):
    """Per stage, the most micro-batches whose forward has run and backward has not, in the course's GPipe and 1F1B
    orders (`parallel.stage_order`): stages×2."""
    peaks = []
    for stage in range(stages):
        row = []
        for schedule in parallel.SCHEDULES:
            held = peak = 0
            for kind, _ in parallel.stage_order(stage, stages, microbatches, schedule):
                held += 1 if kind == "F" else -1
                peak = max(peak, held)
            row.append(peak)
        peaks.append(row)
    return torch.tensor(peaks)


def _held_wrong(stages, microbatches, per_stage=True, first_forward=1, capped=True):
    one_f_one_b = stages - torch.arange(stages) - 1 + first_forward if per_stage else torch.full((stages,), stages)
    return torch.stack([torch.full((stages,), microbatches),
                        one_f_one_b.clamp(max=microbatches) if capped else one_f_one_b], 1)


PIPELINE_MISTAKES = (
    Mistake("p on every stage", partial(_held_wrong, per_stage=False),
            "every stage holds p micro-batches under 1F1B: stage s warms up with p − s − 1 forwards, so it holds "
            "p − s at most (the last stage one)"),
    Mistake("warm-up forwards only", partial(_held_wrong, first_forward=0),
            "only the warm-up forwards are counted: the forward that runs before the first backward is held too, "
            "p − s in all"),
    Mistake("not capped at m", partial(_held_wrong, capped=False),
            "a stage holds more micro-batches than there are: with m < p it holds at most m"),
)


EXERCISES = [
    Exercise("round_to_bfloat16", "11_speed_and_scale", "hard", lambda x: x.to(torch.bfloat16).float(),
             _bfloat16_cases, BFLOAT16_MISTAKES, forbidden=("bfloat16",)),
    Exercise("symmetric_int8", "11_speed_and_scale", "medium", _torch_symmetric_int8, _int8_cases, INT8_MISTAKES,
             forbidden=("quantize_per_tensor", "quantize_per_tensor_dynamic", "quantize_dynamic", "quantize_int8",
                        "fake_quantize_per_tensor_affine")),
    Exercise("peak_activations", "11_speed_and_scale", "medium", _held_by_schedule, _pipeline_cases,
             PIPELINE_MISTAKES, forbidden=("stage_order", "ideal_schedule")),
]
