"""One module per `hear-sela` subcommand (see hear_sela/cli.py)."""
