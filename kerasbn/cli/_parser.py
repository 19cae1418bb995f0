"""The argument parser every command line uses: argparse's, with a usage error as one
line that names the fix (``error: argument --epochs: invalid int value: 'abc'; see
python -m kerasbn.compare --help``), not its whole usage block, and exit status 2."""

from __future__ import annotations

import argparse

__all__ = ["ArgumentParser"]


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str):
        self.exit(2, f"error: {message}; see {self.prog} --help\n")
