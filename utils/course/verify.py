"""`make verify`: every chapter run as a script, with a time limit, and one table that says what passed.

Not a chapter of its own: it is the instructor's check before a workshop and the course's check on a new machine.

    python -m utils.course.verify                              # every chapter, the automatic profile
    python -m utils.course.verify --profile gpu --jobs 6       # several chapters at once on one GPU
    python -m utils.course.verify --chapters "01b 04" --readme # only these; put the table into the README

Each chapter runs as a script in the chosen profile (``python -m utils.course.execute chapters/<name>.py``: its
cells in order in one Python process, no kernel or Jupyter server needed), its output logged to
``chapters/outputs/verify-<profile>/<name>.log`` and what it showed kept as an executed notebook in
``chapters/outputs/executed/<profile>/<name>.ipynb``, from which `make book` builds its pages. The table (chapter,
status, wall and CPU seconds against the profile's budget, device, the headline figures the chapter reported with
`utils.results.report`, the first failure with its message) is printed and written to ``chapters/outputs/verify-<profile>.md``; the command exits
non-zero if any chapter failed or ran out of time. Trained models are retrained (fresh timings) and their
checkpoints kept, so a workshop the next day reuses them; ``--reuse`` keeps up-to-date checkpoints instead.

Ctrl-C stops at once: each chapter runs in its own process group (so the time limit can kill all it started),
out of the terminal's reach, so `verify` passes the interrupt on (SIGINT, letting `fit` save its incomplete run,
then SIGKILL after ``GRACE_SECONDS``), marks the running chapters "interrupted", skips the rest, prints the
table so far (written nowhere: it is not a verification) and exits with 130.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .. import results
from ..plotting import OUTPUTS
from ..runtime import PROFILES, RETRAIN_VARIABLE, profile as automatic_profile

ROOT = Path(__file__).resolve().parents[2]
CHAPTERS = ROOT / "chapters"
README = ROOT / "README.md"
# Seconds a chapter may take: smoke on the 2-core CI machine, cpu on a 2-core laptop, gpu on one H100-class GPU.
BUDGET = {"smoke": 120, "cpu": 600, "gpu": 300}
LIMIT_FACTOR = 2  # a chapter is stopped at twice its budget; over budget but within the limit is flagged, not failed
GRACE_SECONDS = 10  # after a Ctrl-C, how long a chapter may take to stop (fit saves its incomplete run) before SIGKILL
COLUMNS = ("chapter", "status", "wall s", "CPU s", "budget s", "device", "headline figures", "first failure")


@dataclass
class Outcome:
    """One chapter's run: ``status`` is "passed", "failed", "timed out" or "interrupted" (by Ctrl-C)."""

    chapter: str
    status: str
    wall_seconds: float
    cpu_seconds: float
    budget_seconds: int
    device: str = ""
    figures: list = field(default_factory=list)
    failure: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "passed"

    @property
    def over_budget(self) -> bool:
        """Both the wall and the CPU seconds exceed the budget. CPU seconds within it show that the chapter fits an
        idle machine even when other jobs slowed this run down (on one thread they are the chapter's work)."""
        return min(self.wall_seconds, self.cpu_seconds) > self.budget_seconds


def chapter_names(selection: str | None = None, folder: Path = CHAPTERS) -> list[str]:
    """The chapters under ``folder`` (``01a_convolution_by_hand`` …) whose name starts with one of the
    space-separated prefixes in ``selection`` (all of them when empty)."""
    names = sorted(p.stem for p in folder.glob("[0-9]*.py"))
    prefixes = (selection or "").split()
    if not prefixes:
        return names
    unknown = [p for p in prefixes if not any(n.startswith(p) for n in names)]
    if unknown:
        raise ValueError(f"no chapter starts with {', '.join(map(repr, unknown))}; "
                         f"chapters: {' '.join(n.split('_')[0] for n in names)}")
    return [n for n in names if any(n.startswith(p) for p in prefixes)]


def first_failure(log: str, script: str) -> str:
    """The last exception of a traceback in ``log``, with the line of ``script`` (the chapter's file name) it
    came from: ``line 365: AssertionError: some head should read the mirrored position``."""
    lines = log.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("Traceback (most recent call last)")]
    if not starts:
        return ""
    tail = lines[starts[-1]:]
    where = [re.search(rf'File "?[^"\s]*{re.escape(script)}(?:", line |:)(\d+)', line) for line in tail]
    line_number = next((m.group(1) for m in reversed(where) if m), None)
    exception = next((i for i in range(len(tail) - 1, 0, -1)
                      if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b", tail[i])), None)
    message = (" ".join(s.strip() for s in tail[exception:] if s.strip()) if exception is not None
               else tail[-1].strip())
    return (f"line {line_number}: " if line_number else "") + message[:300]


class Running:
    """The process groups of the chapters running now, so that one Ctrl-C in `verify` can stop them all."""

    def __init__(self):
        self.groups: set[int] = set()
        self.stopping = False
        self.lock = threading.Lock()

    def add(self, group: int) -> None:
        """Track ``group``; if a stop has begun, kill it at once (it started just as Ctrl-C came)."""
        with self.lock:
            self.groups.add(group)
            if self.stopping:
                _signal_group(group, signal.SIGKILL)

    def discard(self, group: int) -> None:
        with self.lock:
            self.groups.discard(group)

    def stop(self, grace: float) -> None:
        """SIGINT every running chapter, wait up to ``grace`` seconds for them to end, then SIGKILL the rest;
        a second Ctrl-C cuts the wait short."""
        if grace < 0:
            raise ValueError(f"grace must be a number of seconds ≥ 0, not {grace!r}")
        with self.lock:
            self.stopping = True
            groups = set(self.groups)
        for group in groups:
            _signal_group(group, signal.SIGINT)
        deadline = time.monotonic() + grace
        try:
            while self.groups and time.monotonic() < deadline:
                time.sleep(0.05)
        except KeyboardInterrupt:
            pass  # a second Ctrl-C: stop waiting, kill now
        with self.lock:
            for group in self.groups:
                _signal_group(group, signal.SIGKILL)


def _signal_group(group: int, signum: int) -> None:
    try:
        os.killpg(group, signum)
    except ProcessLookupError:  # it ended on its own meanwhile
        pass


def run_chapter(name: str, profile_name: str, *, limit: float, threads: int | None = None, reuse: bool = False,
                folder: Path = CHAPTERS, log_dir: Path | None = None, running: Running | None = None) -> Outcome:
    """Run ``folder/<name>.py`` as a script in ``profile_name`` (utils.course.execute: its cells in order in one
    process, the executed notebook kept in ``executed/<profile>/`` beside the log folder for `make book`), stopping
    it after ``limit`` seconds; with ``running``, it is tracked there while it runs, so that `Running.stop` can
    interrupt it."""
    log_dir = log_dir or OUTPUTS / f"verify-{profile_name}"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    notebook = log_dir.parent / "executed" / profile_name / f"{name}.ipynb"   # what `make book` shows
    results.results_path(name, profile_name).unlink(missing_ok=True)  # no figures from an earlier run
    env = dict(os.environ, COURSE_PROFILE=profile_name, MPLBACKEND="Agg", PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    env.pop(RETRAIN_VARIABLE, None)
    if not reuse:
        env[RETRAIN_VARIABLE] = "1"
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    start = time.perf_counter()
    with open(log_path, "w") as log:
        process = subprocess.Popen([sys.executable, "-m", "utils.course.execute", str(folder / f"{name}.py"),
                                    "--output", str(notebook)], cwd=ROOT, env=env, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        if running is not None:
            running.add(process.pid)  # start_new_session: the group's id is the chapter's pid
        timer = threading.Timer(limit, _signal_group, (process.pid, signal.SIGKILL))
        timer.start()
        _, status, usage = os.wait4(process.pid, 0)  # the child's own CPU time, whatever else runs beside it
        timer.cancel()
        if running is not None:
            running.discard(process.pid)
        process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    record = results.read(name, profile_name)
    text = log_path.read_text(errors="replace")
    if process.returncode == 0:
        state, failure = "passed", ""
    elif running is not None and running.stopping:
        state, failure = "interrupted", f"stopped by Ctrl-C after {wall:.0f} s"
    elif process.returncode == -signal.SIGKILL and wall >= limit:
        state, failure = "timed out", f"stopped after {limit:.0f} s (budget {BUDGET[profile_name]} s)"
    else:
        state = "failed"
        failure = first_failure(text, f"{name}.py") or f"exit code {process.returncode}; see {log_path.relative_to(ROOT)}"
    return Outcome(name, state, wall, usage.ru_utime + usage.ru_stime, BUDGET[profile_name],
                   record.get("device", ""), record.get("figures", []), failure)


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def table_rows(outcomes: list[Outcome]) -> list[list[str]]:
    """One list of cells (in ``COLUMNS`` order) per outcome."""
    rows = []
    for o in outcomes:
        status = o.status + (" (over budget)" if o.ok and o.over_budget else "")
        figures = "; ".join(results.format_figure(f) for f in o.figures) or "—"
        cells = (o.chapter, status, f"{o.wall_seconds:.0f}", f"{o.cpu_seconds:.0f}", str(o.budget_seconds),
                 o.device or "—", figures, o.failure or "—")
        rows.append([_cell(c) for c in cells])
    return rows


def table(outcomes: list[Outcome], profile_name: str, jobs: int) -> str:
    """The results as a Markdown table with a heading line naming the profile, date and parallelism."""
    passed = sum(o.ok for o in outcomes)
    lines = [f"`make verify PROFILE={profile_name}` on {datetime.date.today()}, {jobs} chapter(s) at a time: "
             f"{passed} of {len(outcomes)} passed.", "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(outcomes)]
    return "\n".join(lines) + "\n"


def _previous_seconds(path: Path) -> dict[str, float]:
    try:
        return {row["chapter"]: row["wall_seconds"] for row in json.loads(path.read_text())}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def verify(profile_name: str, chapters: list[str], jobs: int, *, limit: float | None = None,
           reuse: bool = False, folder: Path = CHAPTERS) -> list[Outcome]:
    """Run ``chapters`` (of ``folder``) in ``profile_name``, ``jobs`` at a time; write and print the table; return
    the outcomes. On Ctrl-C: stop the running chapters, print the table so far and re-raise KeyboardInterrupt."""
    if profile_name not in PROFILES:
        raise ValueError(f"profile must be one of {', '.join(PROFILES)}, not {profile_name!r}")
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, not {jobs}")
    limit = limit or LIMIT_FACTOR * BUDGET[profile_name]
    threads = max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else None  # chapters at once share the cores
    sidecar = OUTPUTS / f"verify-{profile_name}.json"
    earlier = _previous_seconds(sidecar)
    order = sorted(chapters, key=lambda n: -earlier.get(n, 0))  # longest first: the slowest chapter sets the end

    running = Running()

    def one(name: str) -> Outcome | None:
        if running.stopping:
            return None  # Ctrl-C came before this chapter started
        outcome = run_chapter(name, profile_name, limit=limit, threads=threads, reuse=reuse, folder=folder,
                              running=running)
        print(f"{name}: {outcome.status} in {outcome.wall_seconds:.0f} s ({outcome.cpu_seconds:.0f} CPU s)"
              + (f" — {outcome.failure}" if outcome.failure else ""), flush=True)
        return outcome

    pool, futures = ThreadPoolExecutor(max_workers=jobs), []
    try:
        for name in order:
            futures.append(pool.submit(one, name))
        finished = {o.chapter: o for o in (future.result() for future in futures)}
    except KeyboardInterrupt:
        running.stop(GRACE_SECONDS)
        pool.shutdown(wait=True, cancel_futures=True)
        done = [f.result() for f in futures if not f.cancelled()]
        finished = {o.chapter: o for o in done if o is not None}
        outcomes = [finished[n] for n in chapters if n in finished]
        skipped = len(chapters) - len(outcomes)
        print(f"\nStopped by Ctrl-C; {skipped} chapter(s) not run. The table so far (not written to "
              f"verify-{profile_name}.md: an interrupted run verifies nothing):\n\n"
              + table(outcomes, profile_name, jobs))
        raise
    pool.shutdown()
    outcomes = [finished[n] for n in chapters]
    text = table(outcomes, profile_name, jobs)
    OUTPUTS.mkdir(parents=True, exist_ok=True)
    (OUTPUTS / f"verify-{profile_name}.md").write_text(text)
    results.write_json_atomically(sidecar, [asdict(o) for o in outcomes])
    print("\n" + text)
    return outcomes


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="", help="smoke, cpu or gpu (default: the automatic choice)")
    parser.add_argument("--chapters", default="", help='chapter prefixes, e.g. "01b 04" (default: all)')
    parser.add_argument("--jobs", default="", help="chapters run at once (default: 1 on CPU, 6 on a GPU)")
    parser.add_argument("--time-limit", type=float, default=None,
                        help=f"seconds before a chapter is stopped (default: {LIMIT_FACTOR}× its profile's budget)")
    parser.add_argument("--reuse", action="store_true", help="reuse up-to-date checkpoints instead of retraining")
    parser.add_argument("--readme", action="store_true", help="also write the table into README.md")
    args = parser.parse_args(argv)
    profile_name = args.profile.strip() or automatic_profile()
    import torch

    jobs = int(args.jobs) if str(args.jobs).strip() else (6 if torch.cuda.is_available() else 1)
    try:
        outcomes = verify(profile_name, chapter_names(args.chapters), jobs, limit=args.time_limit, reuse=args.reuse)
    except KeyboardInterrupt:
        return 130  # the shell's code for "stopped by Ctrl-C"; the table so far is printed
    if args.readme:
        README.write_text(results.merge_block(
            README.read_text(), f"<!-- verify:{profile_name}:start -->", f"<!-- verify:{profile_name}:end -->",
            f"Measured by `make verify PROFILE={profile_name}`; last run on {datetime.date.today()}.", COLUMNS,
            {row[0]: row for row in table_rows(outcomes)}, chapter_names()))
    return 0 if all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
