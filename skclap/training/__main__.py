"""``python -m skclap.training MANIFEST --out DIR ...``: the entry point for ``torchrun``.

torchrun --nproc_per_node=4 -m skclap.training manifest.csv --out run/ --batch-size 768
"""

import argparse
import sys

from ..cli import add_train_arguments, run_train


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m skclap.training", description="train CLAP (torchrun-ready)")
    add_train_arguments(parser)
    return run_train(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
