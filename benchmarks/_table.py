"""The benchmarks' output: the machine they ran on, and a markdown table of (measure, value, note) rows."""

import os
import platform
from pathlib import Path


def cpu_name() -> str:
    """The CPU's model name (from ``/proc/cpuinfo`` where there is one)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_kind() -> str:
    """Which of the project's machine kinds this CPU is: figures differ between them by more than
    their drift, so every table says which one it was measured on."""
    try:
        flags = set(next((line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")), "").split())
    except OSError:
        flags = set()
    if "avx512f" in flags:
        return "AVX-512" + (" with native bf16" if flags & {"avx512_bf16", "amx_bf16"} else ", no native bf16")
    if "avx2" in flags:
        return "AVX2-only"
    return platform.machine()


def machine() -> str:
    """One line: the CPU, its kind and its cores."""
    return f"machine: {cpu_name()} ({cpu_kind()}), {os.cpu_count()} logical CPUs"


def print_table(rows: list[tuple[str, str, str]]) -> None:
    """A markdown table of (measure, value, note) rows, under the machine it was measured on."""
    width = max(len(r[0]) for r in rows)
    print(f"\n{machine()}")
    print(f"\n| {'measure':{width}s} | value | note |\n|{'-' * (width + 2)}|---|---|")
    for name, value, note in rows:
        print(f"| {name:{width}s} | {value} | {note} |")
