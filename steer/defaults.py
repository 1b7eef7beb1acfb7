"""Defaults the CLI and the library share, in a module that imports nothing heavy."""

DEFAULT_MODEL = "dssgan-mnist"
