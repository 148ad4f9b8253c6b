"""Primary account numbers (card numbers) in text: found, and masked, so none is stored.

A PAN is 13-19 digits passing the Luhn check (ISO/IEC 7812). People and systems
write it in groups, so a candidate is any run of consecutive digit groups joined
by up to three separator characters (spaces and dashes as people type them, NUL
as a UTF-16 payload puts between characters) whose digits number 13-19 and pass
Luhn: "4111 1111 1111 1111", "4111-1111-1111-1111", "card_4111111111111111", and
the PAN inside "4111 1111 1111 1111 123" (a PAN and its CVV). A group of 20 or
more digits is a longer number, never a PAN.

Digits are Unicode decimal digits (fullwidth ones too); masking replaces
each digit of a PAN by as many `*` as its UTF-8 bytes, so a masked payload keeps
its length and every offset, and separators stay where they were.

About one random number in ten passes Luhn: a 13-19 digit number that is not a
card (a numeric id, a timestamp in milliseconds) is flagged one time in ten.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

MIN_DIGITS = 13
MAX_DIGITS = 19
MAX_SEPARATOR_RUN = 3
# spaces: ASCII, no-break, figure, thin, narrow no-break, ideographic; dashes: hyphen-minus,
# hyphen, non-breaking hyphen, figure dash, en dash, em dash, minus sign, fullwidth hyphen-minus;
# NUL: the high byte of each ASCII character of UTF-16 text.
SEPARATORS = " \u00a0\u2007\u2009\u202f\u3000-\u2010\u2011\u2012\u2013\u2014\u2212\uff0d\x00"
# The longest text a PAN can span, in UTF-8 bytes (a digit is at most 4, a separator 3):
# a window this much past a cut sees every PAN that starts before the cut whole.
MAX_PAN_BYTES = 4 * MAX_DIGITS + 3 * MAX_SEPARATOR_RUN * (MAX_DIGITS - 1)

_SEPARATOR_CLASS = "[" + re.escape(SEPARATORS) + "]"
# a maximal run of digit groups; unambiguous (a group cannot start with a separator), so linear
_RUN = re.compile(rf"\d+(?:{_SEPARATOR_CLASS}{{1,{MAX_SEPARATOR_RUN}}}\d+)*")
_GROUP = re.compile(r"\d+")
# 13 digits with at most MAX_SEPARATOR_RUN separators between any two: text without one holds no
# PAN; one C-level search that spares most texts (every usual id) the Python below
_LONG_ENOUGH = re.compile(
    rf"\d(?:{_SEPARATOR_CLASS}{{0,{MAX_SEPARATOR_RUN}}}\d){{{MIN_DIGITS - 1}}}"
)


def luhn_valid(digits: str) -> bool:
    """Whether the decimal digits pass the Luhn (mod 10) check."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def pan_spans(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of every PAN-like stretch of `text`; stretches may overlap."""
    if not _LONG_ENOUGH.search(text):
        return
    for run in _RUN.finditer(text):
        groups = [(g.start(), g.end(), g.group()) for g in _GROUP.finditer(run.group())]
        if sum(end - start for start, end, _ in groups) < MIN_DIGITS:
            continue
        for first in range(len(groups)):
            digits = ""
            for last in range(first, len(groups)):
                digits += groups[last][2]
                if len(digits) > MAX_DIGITS:
                    break
                if len(digits) >= MIN_DIGITS and luhn_valid(digits):
                    yield run.start() + groups[first][0], run.start() + groups[last][1]


def contains_pan(text: str) -> bool:
    """Whether `text` holds a PAN-like digit run (13-19 digits, separators allowed, Luhn-valid)."""
    return next(pan_spans(text), None) is not None


def mask_text(text: str) -> tuple[str, int]:
    """`text` with every digit of every PAN-like run replaced by `*` (one per UTF-8 byte).

    Returns the masked text and how many stretches were masked (overlapping ones as one).
    """
    merged: list[list[int]] = []
    for start, end in sorted(pan_spans(text)):
        if merged and start < merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    if not merged:
        return text, 0
    chars = list(text)
    for start, end in merged:
        for index in range(start, end):
            if chars[index].isdecimal():
                chars[index] = "*" * len(chars[index].encode("utf-8"))
    return "".join(chars), len(merged)


def mask_bytes(data: bytes) -> tuple[bytes, int]:
    """`data` with every PAN-like digit run masked, byte for byte; bytes that are not UTF-8 stay.

    The same length as `data`, with the count of masked stretches.
    """
    text = data.decode("utf-8", "surrogateescape")
    masked, count = mask_text(text)
    if not count:
        return data, 0
    return masked.encode("utf-8", "surrogateescape"), count
