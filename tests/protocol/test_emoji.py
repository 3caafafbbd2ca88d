"""A reaction is exactly one emoji as people see it (issue 12, item 11).

Real emoji of every shape Unicode has (single pictographs old and new, text-
default symbols with and without a variation selector, skin tones, ZWJ
sequences of two to four elements, flags, subdivision flags, keycaps) are
one; pairs, runs, fragments, letters and anything mixed are refused with a
message that says why.
"""

from __future__ import annotations

import pytest

from protocol.emoji import emoji_problem, is_emoji

ONE_EMOJI = {
    # single pictographs, from Unicode 1.1 to 16
    "thumbs up": "👍",
    "hot beverage (BMP)": "☕",
    "red heart, bare": "\u2764",
    "red heart with VS16": "\u2764\ufe0f",
    "heart in text style (VS15)": "\u2764\ufe0e",
    "copyright with VS16": "\u00a9\ufe0f",
    "double exclamation": "\u203c\ufe0f",
    "mahjong tile": "🀄",
    "melting face (14.0)": "🫠",
    "shaking face (15.0)": "\U0001fae8",
    "pink heart (15.0)": "\U0001fa77",
    "face with bags under eyes (16.0)": "\U0001fae9",
    # skin tones
    "thumbs up, medium skin": "👍🏽",
    "waving hand, dark skin": "👋🏿",
    "ninja, light skin (13.0)": "🥷🏻",
    # ZWJ sequences
    "family of three": "👨\u200d👩\u200d👧",
    "family of four": "👨\u200d👩\u200d👧\u200d👦",
    "rainbow flag": "🏳\ufe0f\u200d🌈",
    "pirate flag": "🏴\u200d☠\ufe0f",
    "woman technologist, medium-dark": "👩🏾\u200d💻",
    "man golfing": "🏌\ufe0f\u200d♂\ufe0f",
    "handshake, two tones": "🫱🏻\u200d🫲🏿",
    "kiss, two tones": "🧑🏻\u200d❤\ufe0f\u200d💋\u200d🧑🏼",
    "couple with heart": "👩\u200d❤\ufe0f\u200d👨",
    "phoenix (15.1)": "🐦\u200d🔥",
    "lime (15.1)": "🍋\u200d🟩",
    "head shaking horizontally (15.1)": "🙂\u200d↔\ufe0f",
    "eye in speech bubble": "👁\ufe0f\u200d🗨\ufe0f",
    # flags
    "Tunisia": "🇹🇳",
    "France": "🇫🇷",
    "Japan": "🇯🇵",
    "Scotland (tag sequence)": "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",
    "Wales (tag sequence)": "🏴\U000e0067\U000e0062\U000e0077\U000e006c\U000e0073\U000e007f",
    # keycaps
    "keycap one": "1\ufe0f\u20e3",
    "keycap hash": "#\ufe0f\u20e3",
    "keycap asterisk, unqualified": "*\u20e3",
    "keycap ten": "🔟",
}

NOT_ONE_EMOJI = {
    "two pictographs": "👍👎",
    "nine thumbs up": "👍" * 9,
    "two hearts": "❤\ufe0f❤\ufe0f",
    "two flags": "🇹🇳🇫🇷",
    "three regional indicators": "🇹🇳🇫",
    "a lone regional indicator": "🇹",
    "a lone skin tone": "🏻",
    "two skin tones": "👍🏻🏻",
    "a lone ZWJ": "\u200d",
    "a trailing ZWJ": "👍\u200d",
    "a leading ZWJ": "\u200d👍",
    "a ZWJ then a flag": "🏳\ufe0f\u200d🇹🇳",
    "five elements joined": "👨\u200d👩\u200d👧\u200d👦\u200d👶",
    "a lone variation selector": "\ufe0f",
    "a lone keycap mark": "\u20e3",
    "a digit": "1",
    "a letter": "a",
    "a word": "ok",
    "an emoji and a letter": "👍a",
    "an emoji and a space": "👍 ",
    "a space and an emoji": " 👍",
    "an emoji with a combining accent": "👍\u0301",
    "a letter with a combining accent": "a\u0301",
    "markup": "<b>",
    "a tag sequence without its end": "🏴\U000e0067\U000e0062",
    "a CJK ideograph": "中",
    "an arrow that is no emoji": "\u2190",
    "empty": "",
    "seventeen code points": "👍" * 17,
}


@pytest.mark.parametrize("emoji", ONE_EMOJI.values(), ids=ONE_EMOJI.keys())
def test_one_emoji_of_any_shape_is_one(emoji: str) -> None:
    assert emoji_problem(emoji) is None
    assert is_emoji(emoji)


@pytest.mark.parametrize("text", NOT_ONE_EMOJI.values(), ids=NOT_ONE_EMOJI.keys())
def test_anything_else_is_refused_with_a_reason(text: str) -> None:
    problem = emoji_problem(text)
    assert problem is not None and problem.startswith("A reaction must be")
    assert not is_emoji(text)


def test_the_reason_counts_what_people_see() -> None:
    assert emoji_problem("👍👎") == "A reaction must be exactly one emoji; this is 2 characters."
    assert emoji_problem("👍" * 9) == "A reaction must be exactly one emoji; this is 9 characters."
    assert emoji_problem("x") == "A reaction must be one emoji; this is not an emoji."
