"""`utils.bench`'s table handling (the benchmarks themselves train models: `make bench`, not the tests)."""

import pytest

from utils import bench


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
