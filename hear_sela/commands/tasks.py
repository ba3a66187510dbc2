"""hear-sela tasks FOLDER --labels CSV --out DIR: write a HEAR-format scene task (what heareval's runners read) from
a folder of audio and a labels CSV (fname relative to FOLDER, with or without extension, labels; FSD50K's format,
plus any group column).
With --events: an event task, the CSV's sounds placed at random known onsets in clips (hear_sela.data.event_tasks)."""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger("hear_sela.tasks")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("folder", help="audio folder; the CSV's fname column is relative to it")
    p.add_argument("--labels", required=True, help="labels CSV: fname,labels[,group column ...]")
    p.add_argument("--out", required=True, help="tasks folder (heareval --tasks-dir); the task goes to OUT/NAME")
    p.add_argument("--name", default=None, help="task name (default: the CSV's file name without extension)")
    p.add_argument("--mode", default="multiclass", choices=("multiclass", "multilabel"))
    p.add_argument("--split", default=None, choices=("kfold", "tvt"),
                   help="kfold: presplit_kfold folds (default for scene tasks); tvt: train/valid/test 60/20/20 %% "
                        "(default with --events)")
    p.add_argument("--folds", type=int, default=5,
                   help="number of folds with --split kfold (default 5; heareval needs at least 3)")
    p.add_argument("--group-by", default=None, metavar="COLUMN",
                   help="CSV column (speaker, source file, ...) whose value never spans two folds/splits")
    p.add_argument("--clip-seconds", type=float, default=None,
                   help="pad/trim every clip to this (default: the median duration, at most 4 s)")
    p.add_argument("--cut", action="store_true",
                   help="cut each file into consecutive clips of --clip-seconds (grouped by file unless --group-by)")
    p.add_argument("--max-clips-per-file", type=int, default=None, help="with --cut: keep at most this many per file")
    p.add_argument("--seed", type=int, default=0, help="fold assignment (and, with --events, placement) seed")
    p.add_argument("--events", action="store_true",
                   help="event task: each CSV row is one sound (one label), mixed at random onsets into clips of "
                        "--clip-seconds (default 4) over a quiet noise floor; sounds grouped by file or --group-by")
    p.add_argument("--clips", type=int, default=240, help="with --events: number of clips (default 240)")
    p.add_argument("--max-events", type=int, default=4, help="with --events: at most this many sounds per clip")
    p.add_argument("--max-event-seconds", type=float, default=1.0,
                   help="with --events: each sound cut to at most this long (default 1.0)")


def main(args: argparse.Namespace) -> int:
    from hear_sela.data.audio import AudioError
    from hear_sela.data.event_tasks import write_event_task
    from hear_sela.data.records import DataError
    from hear_sela.data.scene_tasks import write_scene_task
    from hear_sela.data.task_validate import validate_task

    try:
        if args.events:
            if args.mode != "multiclass" or args.cut or args.max_clips_per_file is not None:
                raise DataError("--events takes one label per sound and no --mode multilabel, --cut or "
                                "--max-clips-per-file")
            task = write_event_task(args.folder, args.labels, args.out, name=args.name, clips=args.clips,
                                    split=args.split or "tvt", folds=args.folds, group_by=args.group_by,
                                    clip_seconds=args.clip_seconds, max_events=args.max_events,
                                    max_event_seconds=args.max_event_seconds, seed=args.seed)
        else:
            task = write_scene_task(args.folder, args.labels, args.out, name=args.name, mode=args.mode,
                                    split=args.split or "kfold", folds=args.folds, group_by=args.group_by,
                                    clip_seconds=args.clip_seconds, cut=args.cut,
                                    max_clips_per_file=args.max_clips_per_file, seed=args.seed)
        counts = validate_task(task)
    except (DataError, AudioError) as e:  # expected failures: one clear line, no trace
        log.error("%s", e)
        return 1
    print(f"task: {task} ({sum(counts.values())} clips: " + ", ".join(f"{s} {n}" for s, n in counts.items()) + ")")
    return 0
