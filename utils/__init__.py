"""Deep Vision Lab's shared code. Each module's docstring names the chapter that introduces it.

A chapter starts with ``device = start_chapter("<notebook name>")``.
"""

from . import results
from .plotting import set_chapter
from .runtime import describe, device, seed_everything


def start_chapter(name: str, seed: int = 0):
    """Seed everything, route saved figures and headline results to ``chapters/outputs/<name>``, print the
    set-up; return the device."""
    set_chapter(name)
    results.start(name)
    seed_everything(seed)
    print(describe())
    print(results.runtime_line(name))
    return device()
