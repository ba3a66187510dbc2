"""Plain functions the tests share (and the subprocesses they start import); pytest fixtures live in conftest.py.

Importable as `helpers.<module>` because pytest puts tests/ (a folder without __init__.py) on sys.path."""
