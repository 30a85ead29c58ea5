"""`voiceconv one-click --exp NAME --input DIR ...`: prepare -> train -> index, under one progress display."""

from __future__ import annotations

import argparse
import sys

from tqdm import tqdm

from . import index, prepare, train


def add_arguments(parser: argparse.ArgumentParser) -> None:
    prepare.add_arguments(parser)
    train.add_training_arguments(parser)
    parser.add_argument("--kmeans-threshold", type=int, default=index.KMEANS_THRESHOLD,
                        help="index: reduce to 10,000 k-means centres above this many vectors")


def main(args: argparse.Namespace) -> int:
    """Run the three stages in order, stopping at the first that fails; re-running resumes each stage."""
    stages = [("prepare", prepare.main), ("train", train.main), ("index", index.main)]
    with tqdm(total=len(stages), desc="one-click", unit="stage", position=0, file=sys.stderr) as bar:
        for name, run in stages:
            bar.set_postfix_str(name)
            status = run(args)
            if status:
                return status
            bar.update(1)
    return 0
