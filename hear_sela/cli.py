"""`hear-sela` command line. Each subcommand lives in hear_sela/commands/<name>.py with `add_arguments(parser)` and
`main(args) -> int`; modules are imported only when their command runs, so `hear-sela --help` stays fast."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from hear_sela.runtime import keep_freed_memory

COMMANDS: dict[str, str] = {
    "demo": "the main job on the embedded corpus: train SeLa and BYOL-A, analyse, evaluate with heareval",
    "corpus": "collect, deduplicate and cut folders of audio into a 16 kHz pretraining corpus",
    "prepare": "build a dataset's feature cache (decode, resample, segment, log-mel)",
    "train": "train SeLa or BYOL-A from a recipe: hear-sela train RECIPE [key=value ...]",
    "recipes": "list the packaged recipes (usable by name: hear-sela train demo) and the setting each reproduces",
    "curves": "plot training runs' online-evaluation dev scores against step and CPU hours: ... RUN [RUN ...]",
    "probe": "kNN / logistic-regression probes of saved weights on dev tasks (per embedding part): ... WEIGHTS",
    "labels": "re-run a label update from a checkpoint and write the labels",
    "export": "write an encoder-only export of a checkpoint",
    "import-byola": "turn a published BYOL-A AudioNTT2020 state dict (.pth) into our export",
    "analyze": "compare a checkpoint's emergent classes with reference annotations",
    "browse": "a static HTML site to see and hear a run's emergent classes: ... CKPT_OR_ANALYSIS --out DIR",
    "tasks": "write a HEAR-format scene (or, --events, event) task from a folder of audio and a labels CSV",
    "evaluate": "run heareval for several HEAR modules and tabulate the scores",
    "separate": "split a mono file into two sources with a separation student: hear-sela separate FILE ...",
    "ablate": "train every ablation variant of a folder over seeds and write one table: ... DIR",
    "separation-table": "run the bootstrapped-separation experiment and write its Table 1: ... RECIPE",
}


DESCRIPTION = ("Self-labeling (SeLa) and BYOL-A audio representation learning: train, analyse, export and evaluate "
               "encoders for the HEAR 2021 benchmark and s3prl.")
EPILOG = "Run `hear-sela COMMAND --help` for a command's arguments; the manual in docs/ documents each command."


def build_parser() -> tuple[argparse.ArgumentParser, argparse._SubParsersAction]:
    parser = argparse.ArgumentParser(prog="hear-sela", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        sub.add_parser(name, help=help_text, description=help_text)
    return parser, sub


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser, sub = build_parser()
    # Split at the command name: top-level flags before it, the command's own arguments after it. The command's
    # module is imported only now (so `hear-sela --help` imports nothing heavy), and its arguments are parsed
    # intermixed, so `key=value` overrides may come before or after flags.
    idx = next((i for i, a in enumerate(argv) if not a.startswith("-")), None)
    if idx is None or argv[idx] not in COMMANDS:
        parser.parse_args(argv)  # prints help, or the "invalid choice" error naming the valid commands
        parser.print_help()
        return 2
    top = parser.parse_args(argv[:idx])
    command = argv[idx]
    keep_freed_memory()
    module = importlib.import_module(f"hear_sela.commands.{command.replace('-', '_')}")
    cmd_parser = sub.choices[command]
    module.add_arguments(cmd_parser)
    args = cmd_parser.parse_intermixed_args(argv[idx + 1:])
    args.command, args.verbose = command, top.verbose
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    try:
        return int(module.main(args) or 0)
    except KeyboardInterrupt:
        hint = getattr(module, "interrupted_hint", None)  # a command may say where it stopped and how to go on
        print(f"hear-sela {command}: interrupted" + (f"; {hint(args)}" if hint else ""), file=sys.stderr)
        return 130
    except Exception as e:
        from hear_sela.fileio import os_error_line

        line = str(e) if expected_error(e) else os_error_line(e)  # a read-only folder, a full disk: no traceback
        if args.verbose or line is None:  # -v: the traceback too
            raise
        print(f"hear-sela {command}: error: {line}", file=sys.stderr)
        return 1


# The failures a user causes and can fix (bad config, input, checkpoint, an existing run, a full disk), as (module,
# class): one line, no traceback. Their messages name the problem, the file and the fix.
EXPECTED_ERRORS = (
    ("hear_sela.checkpoint", "CheckpointError"), ("hear_sela.config", "ConfigError"),
    ("hear_sela.data.audio", "AudioError"), ("hear_sela.data.cache", "CacheError"),
    ("hear_sela.data.records", "DataError"),
    ("hear_sela.fileio", "DiskFullError"), ("hear_sela.fileio", "FileSizeLimitError"),
    ("hear_sela.training.loop", "NonFiniteLossError"),
    ("hear_sela.training.state", "ResumeError"), ("hear_sela.analysis.browse.data", "AnalysisFolderError"),
)


def expected_error(e: BaseException) -> bool:
    """Whether `e` is one of EXPECTED_ERRORS. Only modules already imported are looked in: an error whose module was
    never imported cannot have been raised, and importing them (torch, the training loop) would hold a config typo's
    one line back by seconds."""
    classes = tuple(c for module, name in EXPECTED_ERRORS
                    if (c := getattr(sys.modules.get(module), name, None)) is not None)
    return isinstance(e, classes)


if __name__ == "__main__":
    sys.exit(main())
