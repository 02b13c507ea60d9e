"""The memory allocator that `bin/python` preloads against glibc's malloc, both sides in one run.

    python -m bench.allocator DATA [--fraction F] [--allocators glibc,mimalloc]
        [--name NAME] [--logs DIR] [--out bench/results/allocator.md]

Two (or more) copies of the project read the image-folder dataset DATA with every default
param (`--fraction`: a stratified share of its training images); their stages run one stage at
a time, each copy under its own `TRANSFER_ALLOCATOR`, the order of the copies turned round
from one stage to the next (A B, B A, ...), nothing else of the benchmark running meanwhile.
Per stage and in all: wall, user and system seconds and minor page faults (the kernel's
rusage of each stage's process), the ratio of each allocator's wall time to glibc's, and
each copy's test-set `correct` count, which the allocator must not change. The table goes to
its own section (NAME, default: DATA's name) of the results page; each copy's stage output
(what a log of `dvc repro` shows) goes to DIR/<allocator>.log when `--logs` is given.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common import RESULTS, project, script_parser, write_section
from transfer.runtime.devices import device_description
from transfer.runtime.files import read_json
from transfer.runtime.paths import EVALUATION, RUN_STAGES


@dataclass(frozen=True)
class Usage:
    """What one stage's process used."""

    wall: float
    user: float
    system: float
    faults: int

    def __add__(self, other: Usage) -> Usage:
        """Both added up."""
        return Usage(self.wall + other.wall, self.user + other.user,
                     self.system + other.system, self.faults + other.faults)


def run_stage(repo: Path, stage: str, allocator: str, log: Path) -> Usage:
    """Run `bin/python -m transfer.<stage>` in `repo` under `allocator`; what it used (exits
    the benchmark, with the end of its log, if it failed)."""
    env = {**os.environ, "TRANSFER_ALLOCATOR": allocator, "VIRTUAL_ENV": sys.prefix,
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("LD_PRELOAD", None)
    with log.open("a") as out:
        begin = time.perf_counter()
        process = subprocess.Popen(["bin/python", "-m", f"transfer.{stage}"], cwd=repo,
                                   env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - begin
    if os.waitstatus_to_exitcode(status):
        sys.exit(f"bench: {stage} under {allocator} failed:\n{log.read_text()[-4000:]}")
    return Usage(wall, usage.ru_utime, usage.ru_stime, usage.ru_minflt)


def table(allocators: list[str], used: dict[str, dict[str, Usage]],
          correct: dict[str, int]) -> list[str]:
    """The results as Markdown lines: a row per stage and a total, each allocator's wall,
    user and system seconds and minor faults, and its wall time over glibc's."""
    header = ["stage"] + [f"{a} {what}" for a in allocators
                          for what in ("wall s", "user s", "sys s", "faults (M)")]
    header += [f"{a} / glibc wall" for a in allocators if a != "glibc"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    totals = {a: Usage(0, 0, 0, 0) for a in allocators}
    for stage in [*RUN_STAGES, "all"]:
        row = {a: used[a][stage] if stage != "all" else totals[a] for a in allocators}
        if stage != "all":
            totals = {a: totals[a] + row[a] for a in allocators}
        cells = [f"**{stage}**" if stage == "all" else stage]
        for a in allocators:
            u = row[a]
            cells += [f"{u.wall:.1f}", f"{u.user:.1f}", f"{u.system:.1f}", f"{u.faults / 1e6:.2f}"]
        cells += [f"{row[a].wall / row['glibc'].wall:.2f}" for a in allocators if a != "glibc"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Test images right: " + ", ".join(f"{a} {correct[a]:,}" for a in allocators)
              + (" (the same)" if len(set(correct.values())) == 1 else " (they DIFFER)") + "."]
    return lines


def main() -> None:
    """Parse the arguments, run both copies stage by stage, write the section."""
    parser = script_parser(__doc__)
    parser.add_argument("data", type=Path, help="image-folder dataset (directory or archive)")
    parser.add_argument("--fraction", type=float, default=1.0)
    parser.add_argument("--allocators", default="glibc,mimalloc",
                        help="TRANSFER_ALLOCATOR values, glibc first (default glibc,mimalloc)")
    parser.add_argument("--name", default="", help="the section's name (default: DATA's)")
    parser.add_argument("--logs", type=Path, help="a folder for each copy's stage output")
    parser.add_argument("--out", type=Path, default=RESULTS / "allocator.md")
    args = parser.parse_args()
    allocators = args.allocators.split(",")
    if allocators[0] != "glibc" or not args.data.exists():
        sys.exit("bench: DATA must exist and --allocators must start with glibc")
    name = args.name or args.data.name.split(".")[0]
    begin = time.strftime("%Y-%m-%d %H:%M")
    with tempfile.TemporaryDirectory(prefix="bench-allocator-") as work:
        for a in allocators:
            (Path(work) / a).mkdir()
        repos = {a: project(Path(work) / a, args.data.resolve(),
                            {"data": {"fraction": args.fraction}}) for a in allocators}
        (args.logs or Path(work)).mkdir(parents=True, exist_ok=True)
        logs = {a: (args.logs or Path(work)) / f"{a}.log" for a in allocators}
        used: dict[str, dict[str, Usage]] = {a: {} for a in allocators}
        for i, stage in enumerate(RUN_STAGES):
            for a in allocators if i % 2 == 0 else allocators[::-1]:
                used[a][stage] = run_stage(repos[a], stage, a, logs[a])
                print(f"{stage} {a}: {used[a][stage]}", flush=True)
        correct = {a: read_json(repos[a] / EVALUATION)["finetuned"]["correct"]
                   for a in allocators}
    section = [f"## {name}" + (f", {args.fraction:.0%} of the training data"
                               if args.fraction < 1 else ""), "",
               f"`python -m bench.allocator {' '.join(sys.argv[1:])}`, started {begin} on "
               f"{device_description()}; every default param, real weights; the copies' "
               "stages alternate (A B, B A, ...).", "", *table(allocators, used, correct)]
    write_section(args.out, name, "\n".join(section))
    print("\n".join(section))


if __name__ == "__main__":
    main()
