"""Exactly one emoji: the check behind reactions (``msg.react``).

A reaction is one emoji as people see it: one *extended grapheme cluster*
(UAX #29) that has the shape of an emoji in Unicode's emoji specification
(UTS #51, "possible emoji", ED-27)::

    emoji    := element (ZWJ element){0,3}
    element  := RI RI                                   a flag        🇹🇳
              | [0-9#*] FE0F? 20E3                      a keycap      1️⃣
              | Extended_Pictographic modifier?         a pictograph  👍 👍🏽 ❤️ ☕
    modifier := Emoji_Modifier                          a skin tone
              | FE0F | FE0E                             a variation selector
              | tag{1,} E007F                           a subdivision flag 🏴󠁧󠁢󠁳󠁣󠁴󠁿

So ZWJ sequences (👨‍👩‍👧, 🏳️‍🌈, 🧑🏻‍❤️‍💋‍🧑🏼), skin tones, flags, keycaps and
variation selectors are one emoji, while ``"👍👎"``, nine 👍 in a row, a lone
skin tone, a lone regional indicator, letters, digits and spaces are not.

It is a shape check, not a list: an emoji added to Unicode later is accepted
as soon as its code point is ``Extended_Pictographic``, a property Unicode
assigned ahead of time to the blocks reserved for future emoji. What it does
not know is which ZWJ sequences and flags vendors draw as one picture (the
RGI list, which changes every year): an unlisted sequence such as ``🇦🇦``
passes, and a platform may draw it as its parts. ``{0,3}``: the longest
sequences Unicode recommends have four elements (families, the kiss).

Why the ``regex`` package: Python's ``unicodedata`` has no emoji properties
and carries the Unicode of its Python release (3.11: Unicode 14), so a check
built on it refused every emoji added since (🫨, 🩷, 🙂‍↔️). ``regex``
provides ``\\X`` (grapheme clusters) and the emoji properties, from current
Unicode data, updated by upgrading one pinned package.
"""

from __future__ import annotations

import regex

# Far above the longest real emoji (10 code points: 🧑🏻‍❤️‍💋‍🧑🏼); refuses
# absurd input before any matching.
MAX_CODEPOINTS = 16

_ELEMENT = (
    r"(?:\p{Regional_Indicator}{2}"
    r"|[0-9#*]\uFE0F?\u20E3"
    r"|\p{Extended_Pictographic}"
    r"(?:\p{Emoji_Modifier}|[\uFE0E\uFE0F]|[\U000E0020-\U000E007E]+\U000E007F)?)"
)
_EMOJI = regex.compile(rf"{_ELEMENT}(?:\u200D{_ELEMENT}){{0,3}}")
_CLUSTER = regex.compile(r"\X")


def emoji_problem(text: str) -> str | None:
    """Why ``text`` is not exactly one emoji, in words for the client; None when it is."""
    if not text:
        return "A reaction must be one emoji; it is empty."
    if len(text) > MAX_CODEPOINTS:
        return f"A reaction must be one emoji; this is {len(text)} code points."
    clusters = len(_CLUSTER.findall(text))
    if clusters > 1:
        return f"A reaction must be exactly one emoji; this is {clusters} characters."
    if _EMOJI.fullmatch(text) is None:
        return "A reaction must be one emoji; this is not an emoji."
    return None


def is_emoji(text: str) -> bool:
    """Whether ``text`` is exactly one emoji (see the module's grammar)."""
    return emoji_problem(text) is None
