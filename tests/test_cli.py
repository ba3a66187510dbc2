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
