"""Code patterns and cryptographically random code generation (pure; no database).

A pattern is literal text with placeholders: ``#`` a digit, ``?`` a letter, ``*`` any character
of the charset. The default alphabets leave out look-alikes (0/O, 1/I/L), so a code read aloud or
typed from a receipt is unambiguous. Codes are compared in their normalised form: upper case with
separators (space, ``-``, ``_``, ``.``, ``/``) removed.
"""

from __future__ import annotations

import itertools
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass

DIGITS = "23456789"
LETTERS = "ABCDEFGHJKMNPQRSTUVWXYZ"
DEFAULT_CHARSET = LETTERS + DIGITS  # 31 characters, no 0 O 1 I L
PLACEHOLDERS = {"#": "digits", "?": "letters", "*": "charset"}
SEPARATORS = re.compile(r"[\s\-_./]+")
MAX_CODE_LENGTH = 64
# A batch may fill at most this share of its pattern's space, so codes cannot be guessed.
MAX_SPACE_SHARE = 0.001


class PatternError(ValueError):
    pass


def normalize(code: str) -> str:
    return SEPARATORS.sub("", code).upper()


@dataclass(frozen=True)
class Pattern:
    text: str
    charset: str = DEFAULT_CHARSET

    @classmethod
    def build(
        cls, *, pattern: str = "", prefix: str = "", suffix: str = "", length: int | None = None, charset: str = ""
    ) -> Pattern:
        """From a pattern, or from prefix + ``length`` random characters + suffix."""
        charset = (charset or DEFAULT_CHARSET).upper()
        if len(set(charset)) != len(charset) or not charset.isalnum() or len(charset) < 2:
            raise PatternError("The charset must be at least two distinct letters or digits.")
        if not pattern:
            if not length or length < 1:
                raise PatternError("Give a pattern, or a length for the random part.")
            pattern = f"{prefix}{'*' * length}{suffix}"
        elif prefix or suffix:
            pattern = f"{prefix}{pattern}{suffix}"
        pattern = pattern.upper()
        if len(pattern) > MAX_CODE_LENGTH:
            raise PatternError(f"Codes may be at most {MAX_CODE_LENGTH} characters.")
        if not any(ch in PLACEHOLDERS for ch in pattern):
            raise PatternError("The pattern has no random part (#, ? or *).")
        literal = [ch for ch in pattern if ch not in PLACEHOLDERS]
        if any(not (ch.isalnum() or SEPARATORS.fullmatch(ch)) for ch in literal):
            raise PatternError("Literal characters must be letters, digits or separators (- _ . /).")
        return cls(text=pattern, charset=charset)

    def alphabet(self, placeholder: str) -> str:
        return {"#": DIGITS, "?": LETTERS, "*": self.charset}[placeholder]

    @property
    def space(self) -> int:
        return math.prod(len(self.alphabet(ch)) for ch in self.text if ch in PLACEHOLDERS)

    def check_capacity(self, count: int, existing: int = 0) -> None:
        """Refuse batches that would make codes guessable (too large a share of the space)."""
        allowed = int(self.space * MAX_SPACE_SHARE)
        if count + existing > allowed:
            raise PatternError(
                f"{count + existing} codes would fill more than {MAX_SPACE_SHARE:.1%} of the pattern's "
                f"{self.space} possible codes, so they could be guessed; use a longer pattern "
                f"(at most {allowed} codes fit this one)."
            )


def _stream(alphabet: str, n: int) -> str:
    """n characters drawn uniformly from the alphabet using os.urandom (rejection sampling, no bias)."""
    size = len(alphabet)
    limit = 256 - 256 % size
    table = bytes((alphabet[b % size].encode()[0] if b < limit else 0) for b in range(256))
    rejected = bytes(range(limit, 256))
    out = bytearray()
    while len(out) < n:
        raw = os.urandom(int((n - len(out)) * 256 / limit) + 16)
        out += raw.translate(table, rejected)
    return out[:n].decode()


def _runs(text: str) -> list[tuple[str, str]]:
    """The pattern as runs: ("", literal text) or (placeholder, the run of it), in order."""
    return [(kind, "".join(run)) for kind, run in itertools.groupby(text, lambda ch: ch if ch in PLACEHOLDERS else "")]


def generate(pattern: Pattern, n: int) -> list[str]:
    """n random codes (duplicates are possible; the database's unique index decides).

    Each run of placeholders is a slice of its alphabet's random stream (one slice per code and
    run, in C), so a million codes take a fraction of a second, not a loop per character.
    """
    runs = _runs(pattern.text)
    per_code = {ch: sum(len(run) for kind, run in runs if kind == ch) for ch in {k for k, _ in runs if k}}
    streams = {ch: _stream(pattern.alphabet(ch), n * width) for ch, width in per_code.items()}
    columns: list[list[str] | itertools.repeat] = []
    offset = dict.fromkeys(per_code, 0)
    for kind, run in runs:
        if not kind:
            columns.append(itertools.repeat(run, n))
            continue
        stream, width, start, length = streams[kind], per_code[kind], offset[kind], len(run)
        columns.append([stream[i : i + length] for i in range(start, n * width, width)])
        offset[kind] += length
    return ["".join(parts) for parts in zip(*columns)] if len(columns) > 1 else list(columns[0])


def normalizer(pattern: Pattern) -> Callable[[str], str]:
    """``normalize`` for codes of this pattern: they are upper case already, so removing the
    pattern's own separators is all there is to do (str.translate, no regular expression)."""
    separators = {ord(ch): None for ch in pattern.text if ch not in PLACEHOLDERS and SEPARATORS.fullmatch(ch)}
    return (lambda code: code.translate(separators)) if separators else (lambda code: code)
