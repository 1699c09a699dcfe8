"""Peak memory and seconds to read a released checkpoint that is mostly optimizer state.

    python benchmarks/checkpoint_memory.py [--gb 2.0]

Writes a synthetic file of about ``--gb`` GB in laion_clap's layout (``{"epoch", "name",
"state_dict", "optimizer"}``, torch's zip format, pickle protocol 2, numpy scalars in the
optimizer's groups): the weights are a third of it and AdamW's two moment buffers the rest, as in
the released ``.pt`` files. Then, each in a fresh interpreter, side by side:

- ``skclap``: :func:`skclap.checkpoints.read_state_dict` (weights-only unpickling, memory-mapped),
  then every weight read once, as loading them into a model reads them;
- ``torch.load``: the whole file read into memory (``mmap=False``), then the same.

Peak RSS is the process's high-water mark (``VmHWM``) minus its value after importing torch.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, sys, time
import torch
from pathlib import Path

def hwm_kb():  # this process's peak RSS (VmHWM; ru_maxrss would carry the parent's peak across exec)
    line = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
    return int(line.split()[1])

base = hwm_kb()
path, how = Path(sys.argv[1]), sys.argv[2]
t = time.perf_counter()
if how == "skclap":
    from skclap.checkpoints import read_state_dict
    state = read_state_dict(path)
else:
    state = torch.load(path, map_location="cpu", weights_only=False, mmap=False)["state_dict"]
total = sum(float(v.float().sum()) for v in state.values())  # every weight read once
seconds = time.perf_counter() - t
peak = hwm_kb()
print(json.dumps({"seconds": seconds, "peak_mb": (peak - base) / 1024, "weights_mb": sum(v.numel() * v.element_size() for v in state.values()) / 2**20}))
"""


def write_file(path: Path, gb: float) -> int:
    import numpy as np
    import torch

    n_weights = int(gb * 2**30 / 4 / 3)  # float32; weights + two AdamW moments
    chunk = 4_000_000
    sizes = [chunk] * (n_weights // chunk) + ([n_weights % chunk] if n_weights % chunk else [])
    state = {f"module.layer{i}.weight": torch.randn(n) for i, n in enumerate(sizes)}
    opt = {
        "state": {i: {"step": torch.tensor(100.0), "exp_avg": torch.zeros(n), "exp_avg_sq": torch.zeros(n)} for i, n in enumerate(sizes)},
        "param_groups": [{"lr": np.float64(1e-4), "betas": (0.9, 0.999), "weight_decay": 0.0, "params": list(range(len(sizes)))}],
    }
    torch.save({"epoch": 45, "name": "synthetic", "state_dict": state, "optimizer": opt}, path)  # protocol 2
    return path.stat().st_size


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gb", type=float, default=2.0)
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    from _table import print_table

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "synthetic.pt"
        size = write_file(path, args.gb)
        rows = [("file", f"{size / 2**30:.2f} GB", "weights a third, AdamW moments the rest")]
        results = {}
        for how in ("skclap", "torch.load"):
            out = subprocess.run([sys.executable, "-c", CHILD, str(path), how], capture_output=True, text=True, check=True)
            results[how] = json.loads(out.stdout.strip().splitlines()[-1])
        weights = results["skclap"]["weights_mb"]
        rows.append(("weights kept", f"{weights / 1024:.2f} GB", ""))
        for how, r in results.items():
            rows.append((f"{how}: peak RSS", f"{r['peak_mb'] / 1024:.2f} GB", f"{r['peak_mb'] / weights:.2f}x the weights"))
            rows.append((f"{how}: seconds", f"{r['seconds']:.1f}", "read + every weight touched once"))
        print_table(rows)


if __name__ == "__main__":
    main()
