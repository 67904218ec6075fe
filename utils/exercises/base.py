"""What an exercise is (introduced in Chapter 1a, 01a_convolution_by_hand): the `Exercise` and its known `Mistake`s,
and the seeded random inputs the chapters' cases are drawn from. Each chapter's exercises are in ``chapter_<id>.py``
beside this file."""

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

DIFFICULTIES = ("easy", "medium", "hard")         # how long a candidate should need: about 5, 10 and 20 minutes


@dataclass(frozen=True)
class Mistake:
    name: str                 # short, for the catalogue and the tests
    wrong: Callable           # the mistaken version, called like the reference
    says: str                 # what the check adds after "looks like" when the learner's output matches it


@dataclass(frozen=True)
class Exercise:
    name: str                             # the function the learner writes, defined by the chapter's tagged cell
    chapter: str                          # the chapter whose source holds the solution
    difficulty: str                       # one of DIFFICULTIES
    reference: Callable                   # what the learner's function is checked against
    cases: Callable[[], list[tuple]]      # argument tuples, drawn from a fixed seed
    mistakes: tuple[Mistake, ...] = ()    # classic wrong versions, named when the learner's output matches one
    # Library functions that do the exercise's work, as dotted names: the end of any attribute chain the solution
    # uses (".nms" in torchvision.ops.nms), a name it imports, or a library function a global name is bound to.
    forbidden: tuple[str, ...] = ()


def random_arrays(*shapes, seed=0):
    """Standard-normal NumPy arrays of the given shapes, from one seeded generator."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape) for shape in shapes]


def random_tensors(*shapes, seed=0, dtype=torch.float64):
    """Standard-normal tensors of the given shapes, from one seeded generator."""
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(*shape, generator=generator, dtype=dtype) for shape in shapes]


def normalised(x, gamma, beta, eps, axes, ddof=0):
    """(x − mean) / sqrt(var + eps) · gamma + beta over ``axes`` of a NumPy array, ``ddof=1`` the unbiased variance:
    the norms' exercises and their mistakes."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return gamma * (x - x.mean(axes, keepdims=True)) / np.sqrt(x.var(axes, ddof=ddof, keepdims=True) + eps) + beta
