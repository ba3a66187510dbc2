"""`hear-sela --help`: whole sentences, every command listed."""

from __future__ import annotations

import re

import pytest

from hear_sela import cli


def test_top_level_help_is_whole_sentences_and_lists_every_command(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    paragraphs = [p.replace("\n", " ").strip() for p in re.split(r"\n\s*\n", out) if p.strip()]
    description = paragraphs[1]  # after the usage line
    assert description.endswith(".") and "`" not in description, description  # not a cut-off docstring line
    for name in cli.COMMANDS:
        assert re.search(rf"^\s+{re.escape(name)}\s", out, re.MULTILINE), name
    assert "hear-sela COMMAND --help" in paragraphs[-1]


@pytest.mark.parametrize("argv", [["train", "demo", "train.epochz=3", "data.root=/nowhere"],
                                  ["demo", "--out", "{tmp}/demo", "--set", "train.epochz=3"]])
def test_a_config_typo_is_reported_before_heavy_imports(argv, tmp_path):
    """The recipe and overrides are parsed and checked before torch, torchaudio or heareval is imported (a fresh
    clone on a busy machine took 86 s to say so), and the message names the source once."""
    import json
    import subprocess
    import sys

    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code = ("import json, sys\nfrom hear_sela.cli import main\nrc = main(json.loads(sys.argv[1]))\n"
            "heavy = [m for m in ('torch', 'torchaudio', 'heareval', 'hear_sela.training') if m in sys.modules]\n"
            "print(json.dumps({'rc': rc, 'heavy': heavy}))\n")
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(argv)], capture_output=True, text=True, timeout=120)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"rc": 1, "heavy": []}, proc.stderr
    assert "unknown config key 'train.epochz'" in proc.stderr
    assert proc.stderr.count("+ overrides") == 1 and "Traceback" not in proc.stderr
