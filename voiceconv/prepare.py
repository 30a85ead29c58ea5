"""`voiceconv prepare`: preprocess, pitch, content features, mel targets and filelist in one go."""

from __future__ import annotations

import argparse

from . import content, pitch, preprocess
from .config import Experiment


def add_arguments(parser: argparse.ArgumentParser) -> None:
    preprocess.add_arguments(parser)
    pitch.add_method_argument(parser, "; --no-pitch for a model without pitch")
    parser.add_argument("--no-pitch", action="store_true", help="skip pitch extraction")
    content.add_encoder_arguments(parser)


def main(args: argparse.Namespace) -> int:
    reports = preprocess.run(args)
    exp = Experiment.at(args.exp, args.logs_dir)
    config = exp.load_config()
    if not args.no_pitch:
        reports.append(pitch.extract_pitch(exp, config, args.f0_method, args.processes))
    reports += content.run(args, exp, config)
    for report in reports:
        print(report.summary())
    return 0
