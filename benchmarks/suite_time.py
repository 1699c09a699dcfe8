"""How long README's test command takes, on this CPU and with PyTorch and numpy held to AVX2.

    python benchmarks/suite_time.py [--runs N] [--settings native avx2] [--cpus N] [--speed F]

Runs the test command written in README.md (read from it, so that what is timed is what CI runs)
``--runs`` times per setting, one run after another, and prints each run's wall time and pytest's
summary line. The ``avx2`` setting caps every numeric library the tests use at AVX2, as on a CPU
without AVX-512: ATen's kernels (``ATEN_CPU_CAPABILITY``), oneDNN's convolutions and matmuls
(``ONEDNN_MAX_CPU_ISA``), MKL's BLAS and FFT (``MKL_ENABLE_INSTRUCTIONS``) and numpy's dispatched
loops (``NPY_DISABLE_CPU_FEATURES``). It emulates the instruction set, not the core: a machine with
only AVX2 may also differ in clock and caches. ``--cpus N`` runs the command, and every process it
starts, on the first N of the CPUs this process may use (the command is unchanged: as many
pytest-xdist workers as written), which stands in for a machine with slower cores: two workers on
one CPU each get about half of it. ``--speed F`` stands in for cores F times as fast, and more closely:
every process of the run is put in a cgroup whose CPU bandwidth is F of the CPUs it may use (the
kernel's CFS quota, refilled every 10 ms), so each worker keeps a CPU of its own but gets only that
share of its time. It needs a writable cgroup file system (root, cgroup v1 or v2). Each row also
gives the CPU time the run's processes used (user + system), which shows how bound by the CPU it is.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _table import machine, print_table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

#: The environment of the ``avx2`` setting; numpy's names are its dispatch targets above AVX2.
AVX2 = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",
}


def readme_test_command() -> list[str]:
    """The second command of README.md's first code block, the one marked as the tests."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text, re.S)
    if block is None:
        raise SystemExit("README.md has no bash block")
    for line in block.group(1).splitlines():
        command, _, comment = line.partition("#")
        if "tests" in comment and "pytest" in command:
            return shlex.split(command)
    raise SystemExit("README.md's first bash block has no test command")


#: The CFS period of ``--speed``: short, so that a throttled run stalls for milliseconds at a time,
#: as a slow core would be slow throughout, rather than for a large part of a long period.
PERIOD_US = 10_000


class Throttle:
    """A cgroup whose CPU bandwidth is ``speed`` times ``cpus`` CPUs; processes join it with ``enter``."""

    def __init__(self, speed: float, cpus: int) -> None:
        quota = max(1000, round(speed * cpus * PERIOD_US))
        name = f"skclap-suite-{os.getpid()}"
        v2 = Path("/sys/fs/cgroup/cgroup.controllers")
        if v2.is_file():  # the unified hierarchy: cpu.max holds "quota period"
            self.path = Path("/sys/fs/cgroup") / name
            settings = {"cpu.max": f"{quota} {PERIOD_US}"}
        else:
            self.path = Path("/sys/fs/cgroup/cpu") / name
            settings = {"cpu.cfs_period_us": str(PERIOD_US), "cpu.cfs_quota_us": str(quota)}
        try:
            self.path.mkdir()
        except OSError as e:
            raise SystemExit(f"--speed needs a writable cgroup file system: {e}") from e
        try:
            for key, value in settings.items():
                (self.path / key).write_text(value)
        except OSError as e:  # e.g. no cpu controller in this hierarchy: leave nothing behind
            self.path.rmdir()
            raise SystemExit(f"--speed needs the cgroup cpu controller: {e}") from e
        self.share = quota / PERIOD_US

    def enter(self) -> None:
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def remove(self) -> None:
        try:
            self.path.rmdir()
        except OSError as e:  # a process of the run outlived it
            print(f"warning: {self.path} was not removed: {e}", file=sys.stderr)


def cpu_seconds() -> float:
    """User + system time of this process's children that have ended (and been waited for)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(
    command: list[str], extra_env: dict[str, str], cpus: set[int] | None = None, throttle: Throttle | None = None
) -> tuple[float, float, str, int]:
    env = {**os.environ, **extra_env}

    def confine() -> None:  # in the child before exec; inherited by every process it starts
        if cpus is not None:
            os.sched_setaffinity(0, cpus)
        if throttle is not None:
            throttle.enter()

    start, cpu_start = time.perf_counter(), cpu_seconds()
    proc = subprocess.run([*command, "-p", "no:cacheprovider"], cwd=ROOT, env=env, capture_output=True, text=True, preexec_fn=confine)
    wall, cpu = time.perf_counter() - start, cpu_seconds() - cpu_start
    lines = [line for line in proc.stdout.splitlines() if re.search(r"\d+ (passed|failed)", line)]
    return wall, cpu, (lines[-1].strip("= ") if lines else proc.stdout[-300:]), proc.returncode


def label(setting: str, cpus: set[int] | None, throttle: Throttle | None) -> str:
    parts = [setting]
    if cpus is not None:
        parts.append(f"{len(cpus)} CPU{'s' * (len(cpus) > 1)}")
    if throttle is not None:
        parts.append(f"{throttle.share:.2f} CPUs of bandwidth")
    return ", ".join(parts)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--settings", nargs="+", choices=["native", "avx2"], default=["native", "avx2"])
    ap.add_argument("--cpus", type=int, default=None, help="run on this many of the CPUs available (default: all)")
    ap.add_argument("--speed", type=float, default=None, help="give the run this fraction of its CPUs' time (0 < F <= 1)")
    args = ap.parse_args()
    available = sorted(os.sched_getaffinity(0))
    if args.cpus is not None and not 1 <= args.cpus <= len(available):
        ap.error(f"--cpus must be between 1 and {len(available)}, the CPUs available here")
    if args.speed is not None and not 0 < args.speed <= 1:
        ap.error("--speed must be in (0, 1]")
    cpus = None if args.cpus is None else set(available[: args.cpus])
    command = readme_test_command()
    throttle = None if args.speed is None else Throttle(args.speed, len(cpus or available))
    print(f"command: {shlex.join(command)}")
    print(machine() + ("" if cpus is None else f"; run on {len(cpus)} of them"))
    rows = []
    failed = False
    try:
        for setting in args.settings:
            for i in range(args.runs):
                wall, cpu, summary, code = run(command, AVX2 if setting == "avx2" else {}, cpus, throttle)
                failed |= code != 0
                rows.append(
                    (f"{label(setting, cpus, throttle)}, run {i + 1}", f"{wall:.0f} s ({wall / 60:.1f} min)", f"{cpu:.0f} CPU-s; {summary}")
                )
                print(f"{rows[-1][0]}: {rows[-1][1]}; {rows[-1][2]}", flush=True)
    finally:
        if throttle is not None:
            throttle.remove()
    print_table(rows)
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
