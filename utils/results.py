"""Headline figures: the few numbers a chapter stands for, reported once and read by `make verify` and the README.

Introduced in Chapter 1 (01b); every chapter reports its headline results with `report`:

    report("best CNN test accuracy", accuracy, bar=BEST_BAR)

prints one line and records the figure in ``chapters/outputs/<chapter>/results-<profile>.json`` (written
atomically), so the `make verify` table (`utils.course.verify`) shows exactly the numbers the chapter computed.
`utils.start_chapter` starts a fresh record, so figures of an earlier run never leak into a new one.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from pathlib import Path

from . import plotting
from .runtime import describe, device_name, profile


def results_path(chapter: str | None = None, profile_name: str | None = None) -> Path:
    """``chapters/outputs/<chapter>/results-<profile>.json`` for the active (or given) chapter and profile."""
    folder = plotting.OUTPUTS / (chapter or plotting.current_chapter())
    return folder / f"results-{profile_name or profile()}.json"


def write_json_atomically(path: Path, record) -> None:
    """``record`` as JSON in ``path``, written to a temporary file and renamed: never half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(handle, "w") as file:
        json.dump(record, file, indent=1)
    os.replace(temporary, path)


def read(chapter: str, profile_name: str) -> dict:
    """The record of ``chapter``'s last run in ``profile_name``: ``{"device": …, "figures": [{name, value, bar}]}``;
    an empty record if the chapter has not run (or its file is unreadable)."""
    try:
        return json.loads(results_path(chapter, profile_name).read_text())
    except (OSError, ValueError):
        return {"figures": []}


def start(chapter: str) -> None:
    """Begin a fresh record for ``chapter`` in the active profile (called by `utils.start_chapter`)."""
    write_json_atomically(results_path(chapter), {"chapter": chapter, "profile": profile(), "setup": describe(),
                                              "device": device_name(), "figures": []})


def report(name: str, value: float, *, bar: float | None = None, higher_is_better: bool = True,
           digits: int = 3) -> float:
    """Print ``name = value`` (with its bar) and record it as one of the chapter's headline figures.

    Args:
        name: what the figure is, in words ("ResNet test accuracy", "U-Net mIoU").
        value: the measured number (a Python or 0-d tensor number; NaN is refused).
        bar: the chapter's pass mark for this profile, if it asserts one (shown beside the value).
        higher_is_better: False for losses, distances and errors (the bar is then an upper limit).
        digits: decimals shown.
    Returns ``value`` as a float, so ``acc = report("…", evaluate(...)["acc"])`` reads naturally.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError("report(name, value): name must be a non-empty description such as 'test accuracy'")
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"report({name!r}, value): value must be a number, got {type(value).__name__}") from None
    if math.isnan(value):
        raise ValueError(f"report({name!r}, value): the value is NaN — the computation that produced it failed")
    path = results_path()
    record = json.loads(path.read_text()) if path.is_file() else {"figures": []}
    figures = [f for f in record.get("figures", []) if f["name"] != name]
    figures.append({"name": name, "value": value, "bar": bar, "higher_is_better": higher_is_better,
                    "digits": digits})
    record["figures"] = figures
    write_json_atomically(path, record)
    print(f"result: {format_figure(figures[-1])}")
    return value


def format_figure(figure: dict) -> str:
    """``name value`` with its bar, e.g. ``best CNN test accuracy 0.912 (bar ≥ 0.88)``."""
    digits = figure.get("digits", 3)
    text = f"{figure['name']} {figure['value']:.{digits}f}"
    if figure.get("bar") is not None:
        text += f" (bar {'≥' if figure.get('higher_is_better', True) else '≤'} {figure['bar']:.{digits}f})"
    return text


def table_cells(line: str) -> list[str]:
    """One Markdown table row → its stripped cells (an escaped ``\\|`` stays inside its cell)."""
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]


def merge_block(text: str, start: str, end: str, heading: str, columns: tuple[str, ...],
                rows: dict[str, list[str]], order: list[str]) -> str:
    """``text`` (a README) with the Markdown table between the ``start`` and ``end`` markers updated: ``rows``
    (first cell → cells) replace the old rows with the same first cell, other old rows are kept, all in ``order``."""
    if start not in text or end not in text:
        raise ValueError(f"the README has no {start} … {end} block to write the results into: add the two markers")
    block = text[text.index(start) + len(start):text.index(end)]
    kept = {}
    for line in block.splitlines():
        cells = table_cells(line)
        if len(cells) == len(columns) and cells[0] in order:
            kept[cells[0]] = cells
    kept.update(rows)
    lines = [heading, "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(kept[key]) + " |" for key in order if key in kept]
    return text[:text.index(start)] + start + "\n" + "\n".join(lines) + "\n" + text[text.index(end):]


README = Path(__file__).resolve().parents[1] / "README.md"


def measured_runtimes(chapter: str, readme: Path = README) -> dict[str, dict]:
    """What `make verify` last measured for ``chapter``, per profile, from the README's tables:
    ``{profile: {"status", "wall", "cpu", "budget", "device", "date"}}`` (profiles never measured are absent)."""
    text = readme.read_text(encoding="utf-8") if readme.exists() else ""
    measured = {}
    for profile_name in ("smoke", "cpu", "gpu"):
        start, end = f"<!-- verify:{profile_name}:start -->", f"<!-- verify:{profile_name}:end -->"
        if start not in text or end not in text:
            continue
        block = text[text.index(start):text.index(end)]
        date = re.search(r"last run on (\d{4}-\d{2}-\d{2})", block)
        for line in block.splitlines():
            cells = table_cells(line)
            if cells[0] == chapter and len(cells) >= 6:
                try:                                   # a hand-edited row must not stop a chapter from starting
                    wall, cpu, budget = float(cells[2]), float(cells[3]), float(cells[4])
                except ValueError:
                    continue
                measured[profile_name] = {"status": cells[1], "wall": wall, "cpu": cpu, "budget": budget,
                                          "device": cells[5], "date": date.group(1) if date else "?"}
    return measured


def runtime_line(chapter: str) -> str:
    """One sentence for a chapter's first cell: how long it took in each profile when `make verify` last ran."""
    measured = measured_runtimes(chapter)
    parts = []
    for profile_name in ("smoke", "cpu", "gpu"):
        if profile_name not in measured:
            parts.append(f"{profile_name}: not yet measured")
            continue
        m = measured[profile_name]
        minutes = m["cpu"] / 60 if m["device"].startswith("CPU") else m["wall"] / 60
        unit = "min of CPU time on one core" if m["device"].startswith("CPU") else f"min on {m['device']}"
        parts.append(f"{profile_name}: {minutes:.1f} {unit} ({m['status']}, {m['date']})")
    return "run time measured by `make verify` — " + "; ".join(parts)
