"""argparse types shared by the ``zoo`` command and the recipes' parsers: a bad number is refused by the parser,
before any work, with one message naming the bound; and ``is_positive``, the same test for numbers given in Python."""
from __future__ import annotations

import argparse
import math


def number(kind: type, minimum: float, strict: bool, below: float | None = None):
    """An argparse type: a finite ``kind`` (int or float) >= minimum (> if strict) and < below when given."""
    bound = f"{'>' if strict else '>='} {minimum:g}" + (f" and < {below:g}" if below is not None else "")
    noun = "an integer" if kind is int else "a finite number"

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        ok = (value is not None and math.isfinite(value) and (value > minimum if strict else value >= minimum)
              and (below is None or value < below))
        if not ok:
            raise argparse.ArgumentTypeError(f"expected {noun} {bound}, got {text!r}")
        return value
    return parse


def is_positive(value, integer: bool = False) -> bool:
    """Whether ``value`` is a finite number > 0 (an int, not a bool, when ``integer``): the one test behind the
    samplers', the model's and the objectives' checks of their options."""
    if isinstance(value, bool):
        return False
    if integer:
        return isinstance(value, int) and value > 0
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


positive_int = number(int, 0, strict=True)
non_negative_int = number(int, 0, strict=False)
positive_float = number(float, 0, strict=True)
non_negative_float = number(float, 0, strict=False)
port = number(int, 0, strict=True, below=65536)


class OneLineParser(argparse.ArgumentParser):
    """argparse with a usage error in one line (the command, the message, where to read more), exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")
