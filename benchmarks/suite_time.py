"""How long README's test command takes, on this CPU and with PyTorch and numpy held to AVX2.

    python benchmarks/suite_time.py [--runs N] [--settings native avx2] [--cpus N]

Runs the test command written in README.md (read from it, so that what is timed is what CI runs)
``--runs`` times per setting, one run after another, and prints each run's wall time and pytest's
summary line. The ``avx2`` setting caps every numeric library the tests use at AVX2, as on a CPU
without AVX-512: ATen's kernels (``ATEN_CPU_CAPABILITY``), oneDNN's convolutions and matmuls
(``ONEDNN_MAX_CPU_ISA``), MKL's BLAS and FFT (``MKL_ENABLE_INSTRUCTIONS``) and numpy's dispatched
loops (``NPY_DISABLE_CPU_FEATURES``). It emulates the instruction set, not the core: a machine with
only AVX2 may also differ in clock and caches. ``--cpus N`` runs the command, and every process it
starts, on the first N of the CPUs this process may use (the command is unchanged: as many
pytest-xdist workers as written), which stands in for a machine with slower cores: two workers on
one CPU each get about half of it.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _table import print_table  # noqa: E402

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


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run(command: list[str], extra_env: dict[str, str], cpus: set[int] | None = None) -> tuple[float, str, int]:
    env = {**os.environ, **extra_env}
    pin = None if cpus is None else lambda: os.sched_setaffinity(0, cpus)  # inherited by every child
    start = time.perf_counter()
    proc = subprocess.run([*command, "-p", "no:cacheprovider"], cwd=ROOT, env=env, capture_output=True, text=True, preexec_fn=pin)
    wall = time.perf_counter() - start
    lines = [line for line in proc.stdout.splitlines() if re.search(r"\d+ (passed|failed)", line)]
    return wall, (lines[-1].strip("= ") if lines else proc.stdout[-300:]), proc.returncode


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--settings", nargs="+", choices=["native", "avx2"], default=["native", "avx2"])
    ap.add_argument("--cpus", type=int, default=None, help="run on this many of the CPUs available (default: all)")
    args = ap.parse_args()
    available = sorted(os.sched_getaffinity(0))
    if args.cpus is not None and not 1 <= args.cpus <= len(available):
        ap.error(f"--cpus must be between 1 and {len(available)}, the CPUs available here")
    cpus = None if args.cpus is None else set(available[: args.cpus])
    command = readme_test_command()
    print(f"command: {shlex.join(command)}")
    print(f"machine: {cpu_name()}, {os.cpu_count()} logical CPUs" + ("" if cpus is None else f"; run on {len(cpus)} of them"))
    rows = []
    failed = False
    for setting in args.settings:
        for i in range(args.runs):
            wall, summary, code = run(command, AVX2 if setting == "avx2" else {}, cpus)
            failed |= code != 0
            label = setting if cpus is None else f"{setting}, {len(cpus)} CPU{'s' * (len(cpus) > 1)}"
            rows.append((f"{label}, run {i + 1}", f"{wall:.0f} s ({wall / 60:.1f} min)", summary))
            print(f"{rows[-1][0]}: {rows[-1][1]}; {summary}", flush=True)
    print_table(rows)
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
