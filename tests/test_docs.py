"""The documentation as a specification of the project: every results page names a command that still parses, no
tracked file names a path of one particular machine, the README stays a front page, and the layout in
docs/development.md lists every module that exists and nothing that does not.

The strict mkdocs build (broken links, anchors, snippets) runs in `make test` itself, not here.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from hear_sela import cli

ROOT = Path(__file__).resolve().parents[1]
RESULTS = sorted(p for p in (ROOT / "docs" / "results").glob("*.md") if p.name != "index.md")  # index: a list
README_MAX_LINES = 300

# Built from pieces so that this file does not name them itself; each must start a path (a relative folder named
# like one, as in runs/<that name>, is fine).
_START = r"(?<![A-Za-z0-9_.~])"
MACHINE_PATHS = [re.compile((_START + p).encode()) for p in (
    "/" + "work/",                    # this project's build machines
    "/" + r"home/[A-Za-z0-9_.-]+/",   # a user's home on Linux
    "/" + "root/",                    # root's home
    "/" + r"Users/[A-Za-z0-9_.-]+/",  # a user's home on macOS
    "C:" + r"\\\\Users\\\\",          # ... and on Windows, as a string literal writes it (doubled backslashes)
    "C:" + r"\\Users\\",                  # ... or as a path (single backslashes)
)]

_ENV_ASSIGNMENT = re.compile(r"^[A-Z_][A-Z0-9_]*=")
_PYTHONS = {"python", "python3", ".venv/bin/python"}


def shell_commands(markdown: str) -> list[list[str]]:
    """The commands of a page's ```bash blocks, one token list per command (continuations joined, comments and
    leading VAR=value assignments dropped)."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", markdown, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            tokens = shlex.split(line, comments=True)
            while tokens and _ENV_ASSIGNMENT.match(tokens[0]):
                tokens.pop(0)
            if tokens:
                commands.append(tokens)
    return commands


def classify(tokens: list[str]) -> tuple[str, str | None, list[str]]:
    """("cli", None, args) for `hear-sela ...` in any of its spellings, ("script", path, args) for a repository
    script run by python or bash, ("other", None, []) for anything else (python -c, make, ...)."""
    if tokens[0] == "hear-sela":
        return "cli", None, tokens[1:]
    if "-m" in tokens and tokens[0] in _PYTHONS | {"torchrun"}:
        i = tokens.index("-m")
        if tokens[i + 1:i + 2] == ["hear_sela.cli"]:
            return "cli", None, tokens[i + 2:]
    if tokens[0] in _PYTHONS | {"bash"} and len(tokens) > 1 and tokens[1].endswith((".py", ".sh")):
        return "script", tokens[1], tokens[2:]
    return "other", None, []


def parse_cli(args: list[str]) -> None:
    """Parse `hear-sela ARGS` exactly as hear_sela.cli.main does, without running the command."""
    parser, sub = cli.build_parser()
    command = next((a for a in args if not a.startswith("-")), None)
    assert command in cli.COMMANDS, f"hear-sela has no command {command!r}"
    module = __import__(f"hear_sela.commands.{command.replace('-', '_')}", fromlist=["add_arguments"])
    cmd_parser = sub.choices[command]
    module.add_arguments(cmd_parser)
    cmd_parser.parse_intermixed_args(args[args.index(command) + 1:])


# Runs each argparse script up to its parse_args call and stops there: the whole command line is checked (types,
# choices, unknown flags), none of the work is done. One process for all of them, so torch is imported once.
_PARSE_SCRIPTS = """
import argparse, json, runpy, sys
class Parsed(Exception):
    pass
original = argparse.ArgumentParser.parse_args
def parse_then_stop(self, args=None, namespace=None):
    original(self, args, namespace)
    raise Parsed
argparse.ArgumentParser.parse_args = parse_then_stop
report = {}
for script, args in json.loads(sys.argv[1]):
    sys.argv = [script, *args]
    try:
        runpy.run_path(script, run_name="__main__")
        report[script + " " + " ".join(args)] = "ran to the end without calling parse_args"
    except Parsed:
        pass
    except SystemExit as e:
        report[script + " " + " ".join(args)] = f"exit {e.code}"
print(json.dumps(report))
"""


def parse_scripts(calls: list[tuple[str, list[str]]]) -> dict[str, str]:
    """Failures ({command: why}) of repository scripts' command lines; bash scripts and python scripts without
    argparse only have to exist."""
    failures, argparse_calls = {}, []
    for script, args in calls:
        path = ROOT / script
        if not path.is_file():
            failures[f"{script} {' '.join(args)}"] = "no such file in the repository"
        elif script.endswith(".py") and "argparse" in path.read_text():
            argparse_calls.append((script, args))
    if argparse_calls:
        proc = subprocess.run([sys.executable, "-c", _PARSE_SCRIPTS, json.dumps(argparse_calls)], cwd=ROOT,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        failures.update(json.loads(proc.stdout.strip().splitlines()[-1]))
    return failures


def page_commands(page: Path) -> list[tuple[str, str | None, list[str]]]:
    return [c for c in map(classify, shell_commands(page.read_text())) if c[0] != "other"]


@pytest.fixture(scope="module")
def script_failures() -> dict[str, str]:
    """Every results page's script command lines, parsed in one go."""
    calls = [(path, args) for page in RESULTS for kind, path, args in page_commands(page) if kind == "script"]
    return parse_scripts(calls)


@pytest.mark.parametrize("page", RESULTS, ids=[p.name for p in RESULTS])
def test_results_page_regeneration_commands_parse(page, script_failures):
    runnable = page_commands(page)
    assert runnable, f"{page.name} names no command that regenerates it"
    failures = {}
    for kind, path, args in runnable:
        command = f"{path} {' '.join(args)}" if kind == "script" else "hear-sela " + " ".join(args)
        if kind == "script" and command in script_failures:
            failures[command] = script_failures[command]
        elif kind == "cli":
            try:
                parse_cli(args)
            except SystemExit as e:  # argparse's error exit; its message went to stderr
                failures[command] = f"argparse exit {e.code}"
            except AssertionError as e:
                failures[command] = str(e)
    assert not failures, f"{page.name}: commands that no longer parse: {failures}"


def test_a_changed_flag_is_caught():
    """The checks above fail on a flag a command does not have, for the CLI and for a script, and on a script
    that is gone; a good line passes."""
    with pytest.raises(SystemExit):
        parse_cli(["evaluate", "--tasks-dir", "T", "--module", "m", "--out", "O", "--no-such-flag"])
    failures = parse_scripts([("benchmarks/sinkhorn.py", ["--no-such-flag"]), ("benchmarks/gone.py", []),
                              ("benchmarks/sinkhorn.py", ["--dtypes", "--threads", "1"])])
    assert set(failures) == {"benchmarks/sinkhorn.py --no-such-flag", "benchmarks/gone.py "}


def tracked_files() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):  # an sdist or an export without git
        pytest.skip("not a git checkout")
    return [ROOT / name for name in out.decode().split("\0") if name]


def machine_paths(data: bytes) -> list[str]:
    return sorted({m.group().decode(errors="replace") for p in MACHINE_PATHS for m in p.finditer(data)})


def test_no_tracked_file_names_a_machine_path():
    """Paths of one particular machine (its home folders, its work tree) in code, docs, recipes or assets (the
    metadata of an exported weights file included) break on every other machine or leak where it was built."""
    found = {}
    for path in tracked_files():
        if path.is_file():
            hits = machine_paths(path.read_bytes())
            if hits:
                found[str(path.relative_to(ROOT))] = hits
    assert not found, f"machine-specific paths: {found}"


def test_machine_path_patterns_match():
    for text in ("/" + "work/data/x", "/" + "home/alice/audio", "/" + "root/.cache", "/" + "Users/bob/x",
                 "C:" + "\\Users\\carol"):
        assert machine_paths(text.encode()), text
    for text in ("/data/FSD50K", "~/my_audio", "runs/" + "work/x", "/shared/runs/sela"):
        assert not machine_paths(text.encode()), text


def test_readme_is_a_front_page():
    lines = (ROOT / "README.md").read_text().count("\n")
    assert lines < README_MAX_LINES, f"README.md has {lines} lines; move reference text into docs/"


def layout_entries() -> list[str]:
    text = (ROOT / "docs" / "development.md").read_text()
    block = text.split("## Layout", 1)[1].split("```", 2)[1]
    return [line.split()[0] for line in block.splitlines() if line.startswith(("hear_sela/", "upstream/"))]


def test_layout_lists_every_module_and_nothing_else():
    """docs/development.md's layout: each entry exists, and each module is listed (itself, or its package as
    `pkg/`), so a renamed, added or removed module shows up here."""
    entries = layout_entries()
    stale = [e for e in entries if not (ROOT / e).exists()]
    assert not stale, f"docs/development.md lists what does not exist: {stale}"
    packages = [e for e in entries if e.endswith("/")]
    modules = [p.relative_to(ROOT).as_posix() for p in (ROOT / "hear_sela").rglob("*.py")
               if "__pycache__" not in p.parts and not p.relative_to(ROOT).as_posix().startswith(
                   ("hear_sela/recipes/", "hear_sela/s3prl_upstream/"))]  # build copies, not sources
    unlisted = [m for m in modules if m not in entries and not any(m.startswith(p) for p in packages)
                and not (m.endswith("/__init__.py") and m.count("/") > 1)]
    assert not unlisted, f"modules missing from docs/development.md's layout: {unlisted}"
