"""How people really type, as random transformations of generated utterances (issue 7).

Two kinds, both general rather than tied to one evaluation set:

* **Open slot values** (``OpenValues``): a slot filled with a value no list has, so that a model
  learns the words around a slot instead of its known values: made-up tickers ("QXR", "$ZUM"),
  ordinary English words standing in for company names or topics ("harbor", "Vintage Apparel"),
  and time expressions ("past 6 months", "since march", "in 2019").
* **Noise** (``Noise``): keyboard-neighbour typos, dropped, doubled and swapped letters; dropped
  function words; text-speak ("u", "pls", "rn"); filler words; a different word order; casing and
  punctuation changes. Each noisy utterance gets one to three of them.

Random English words come from ``wordfreq`` (a pinned build dependency), minus every word the
templates use, so a random value is never a cue for an intent.
"""

from __future__ import annotations

import random
import re
from typing import Callable, Iterable

from ..errors import BuildError

# ---------------------------------------------------------------- open slot values

OPEN_KINDS = ("ticker", "word", "words", "time")

_MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november", "december"]
_DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_UNITS = ["day", "week", "month", "quarter", "year"]


def _time_phrase(rng: random.Random) -> str:
    unit = rng.choice(_UNITS)
    month = rng.choice(_MONTHS)
    forms: list[Callable[[], str]] = [
        lambda: f"{rng.choice(['this', 'last', 'past', 'previous'])} {unit}",
        lambda: f"{rng.choice(['past', 'last'])} {rng.randint(2, 12)} {unit}s",
        lambda: f"{rng.choice(['since', 'in', 'during', 'for'])} {rng.choice([month, month[:3]])}",
        lambda: f"{rng.choice(['in', 'since', 'for'])} {rng.randint(2012, 2026)}",
        lambda: f"{rng.choice(['since', 'on', 'from'])} {rng.choice(_DAYS)}",
        lambda: rng.choice(["today", "yesterday", "so far", "all time", "to date", "lately", "recently", "overnight"]),
        lambda: rng.choice(["1D", "5D", "1W", "1M", "6M", "2Y", "5Y", "10Y", "MTD", "WTD", "max"]),
        lambda: f"{rng.choice(['over the', 'in the', 'for the'])} {rng.choice(['past', 'last'])} {unit}",
    ]
    return rng.choice(forms)()


class OpenValues:
    """Slot values outside every list, by kind: ``ticker``, ``word``, ``words``, ``time``."""

    def __init__(self, rng: random.Random, exclude: Iterable[str] = (), vocabulary_size: int = 20000) -> None:
        self.rng = rng
        try:
            from wordfreq import top_n_list
        except ImportError:  # pragma: no cover - a declared build dependency
            raise BuildError("generating open slot values needs the package wordfreq (pip install wordfreq==3.1.1)") from None
        banned = {w.lower() for w in exclude}
        # Skip the most frequent words (function words, "order", "price"...): a value should look like a name.
        self.words = [w for w in top_n_list("en", vocabulary_size)[800:] if w.isalpha() and w.isascii() and len(w) >= 3 and w not in banned]

    def ticker(self) -> str:
        rng = self.rng
        letters = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(rng.choice([1, 2, 3, 3, 4, 4, 4, 5])))
        form = rng.random()
        if form < 0.1:
            return f"${letters}"
        if form < 0.15:
            return f"{letters}.{rng.choice('AB')}"
        return letters

    def word(self) -> str:
        word = self.rng.choice(self.words)
        return word.capitalize() if self.rng.random() < 0.4 else word

    def words_phrase(self) -> str:
        words = [self.rng.choice(self.words) for _ in range(self.rng.choice([1, 1, 2, 2, 3]))]
        return " ".join(words)

    def value(self, kind: str) -> str:
        if kind == "ticker":
            return self.ticker()
        if kind == "word":
            return self.word()
        if kind == "words":
            return self.words_phrase()
        if kind == "time":
            return _time_phrase(self.rng)
        raise BuildError(f"unknown open slot kind {kind!r} (known: {', '.join(OPEN_KINDS)})")


# ---------------------------------------------------------------- noise

_KEYBOARD_ROWS = ["qwertyuiop", "asdfghjkl", "zxcvbnm"]


def _neighbours() -> dict[str, str]:
    out: dict[str, str] = {}
    for r, row in enumerate(_KEYBOARD_ROWS):
        for c, ch in enumerate(row):
            near = [row[c - 1] if c else "", row[c + 1] if c + 1 < len(row) else ""]
            for other in (r - 1, r + 1):
                if 0 <= other < len(_KEYBOARD_ROWS):
                    near += [_KEYBOARD_ROWS[other][k] for k in (c - 1, c, c + 1) if 0 <= k < len(_KEYBOARD_ROWS[other])]
            out[ch] = "".join(n for n in near if n)
    return out


NEIGHBOURS = _neighbours()

# Words people leave out of a command box; dropping them keeps the meaning.
DROPPABLE = {"the", "a", "an", "my", "i", "do", "does", "did", "is", "are", "am", "of", "to", "for", "me", "in", "on",
             "any", "some", "currently", "just", "please", "can", "you", "could", "have", "has", "been", "all"}

TEXT_SPEAK = {
    "you": ["u", "ya"], "your": ["ur", "yr"], "you're": ["ur", "youre"], "are": ["r"], "what": ["wat", "wht", "whta"],
    "what's": ["whats", "wats", "what is"], "how's": ["hows", "how is"], "it's": ["its"], "i'm": ["im"], "don't": ["dont"],
    "doesn't": ["doesnt"], "didn't": ["didnt"], "isn't": ["isnt"], "can't": ["cant"], "haven't": ["havent"],
    "please": ["pls", "plz", "pleas"], "thanks": ["thx", "ty"], "through": ["thru"], "though": ["tho"],
    "with": ["w/", "wit"], "and": ["&", "n"], "because": ["bc", "cuz"], "right now": ["rn", "now"],
    "about": ["abt"], "today": ["2day", "tdy"], "tomorrow": ["tmrw"], "yesterday": ["yday", "yest"],
    "account": ["acct", "acc"], "quantity": ["qty"], "percent": ["%", "pct"], "number": ["num", "#"],
    "should": ["shud"], "know": ["kno"], "want": ["wanna"], "going to": ["gonna"], "let me": ["lemme"],
    "give me": ["gimme"], "really": ["rly"], "okay": ["ok", "k"],
}
_SPEAK = sorted(TEXT_SPEAK, key=len, reverse=True)
_SPEAK_RE = re.compile(r"(?<![\w'])(" + "|".join(re.escape(k) for k in _SPEAK) + r")(?![\w'])", re.IGNORECASE)

OPENERS = ["um", "uh", "ok", "ok so", "so", "hey", "yo", "hmm", "quick q", "real quick", "btw", "also", "and", "hi there", "question:"]
CLOSERS = ["pls", "plz", "thx", "thanks", "rn", "now", "again", "lol", "asap", "real quick", "quickly", "?", "??", "...", "!", "for me", "thank you"]


def typo(word: str, rng: random.Random) -> str:
    """One keyboard slip in `word`: a neighbouring key, a dropped, doubled or swapped letter, or an extra key."""
    letters = [i for i, ch in enumerate(word) if ch.isalpha()]
    if len(letters) < 3:
        return word
    i = rng.choice(letters[1:])  # first letters are rarely wrong
    ch = word[i]
    near = NEIGHBOURS.get(ch.lower(), "")
    kind = rng.choice(["neighbour", "drop", "double", "swap", "insert"])
    if kind == "neighbour" and near:
        sub = rng.choice(near)
        return word[:i] + (sub.upper() if ch.isupper() else sub) + word[i + 1 :]
    if kind == "drop":
        return word[:i] + word[i + 1 :]
    if kind == "double":
        return word[:i] + ch + word[i:]
    if kind == "swap" and i + 1 < len(word) and word[i + 1].isalpha():
        return word[:i] + word[i + 1] + ch + word[i + 2 :]
    if near:
        return word[:i] + rng.choice(near) + word[i:]
    return word[:i] + word[i + 1 :]


class Noise:
    """Random, meaning-preserving damage to an utterance; deterministic for a given rng."""

    def __init__(self, rng: random.Random, protect: Iterable[str] = ()) -> None:
        self.rng = rng
        # Words a typo must not hit (e.g. the known slot values, which extraction needs to find).
        self.protect = {w.lower() for w in protect}
        self.ops: list[tuple[float, Callable[[list[str]], list[str]]]] = [
            (3.0, self.typos),
            (2.0, self.drop_words),
            (2.0, self.text_speak),
            (2.0, self.filler),
            (1.0, self.reorder),
            (2.0, self.casing),
            (1.5, self.punctuation),
        ]

    def __call__(self, text: str) -> str:
        words = text.split()
        if not words:
            return text
        steps = 1 + (self.rng.random() < 0.45) + (self.rng.random() < 0.15)
        weights = [w for w, _ in self.ops]
        for op in self.rng.choices([op for _, op in self.ops], weights=weights, k=steps):
            changed = op(words)
            if changed:
                words = changed
        return " ".join(words)

    def typos(self, words: list[str]) -> list[str]:
        candidates = [i for i, w in enumerate(words) if sum(c.isalpha() for c in w) >= 3 and w.lower().strip("?!.,") not in self.protect]
        if not candidates:
            return words
        out = list(words)
        for i in self.rng.sample(candidates, min(len(candidates), 1 + (self.rng.random() < 0.3))):
            out[i] = typo(out[i], self.rng)
        return out

    def drop_words(self, words: list[str]) -> list[str]:
        droppable = [i for i, w in enumerate(words) if w.lower() in DROPPABLE]
        if not droppable or len(words) - len(droppable) < 2:
            return words
        gone = set(self.rng.sample(droppable, min(len(droppable), self.rng.choice([1, 1, 2, 3]))))
        return [w for i, w in enumerate(words) if i not in gone]

    def text_speak(self, words: list[str]) -> list[str]:
        text = " ".join(words)
        hits = list(_SPEAK_RE.finditer(text))
        if not hits:
            return words
        m = self.rng.choice(hits)
        sub = self.rng.choice(TEXT_SPEAK[m.group(1).lower()])
        return (text[: m.start()] + sub + text[m.end() :]).split()

    def filler(self, words: list[str]) -> list[str]:
        if self.rng.random() < 0.5:
            return self.rng.choice(OPENERS).split() + words
        closer = self.rng.choice(CLOSERS)
        if closer in ("?", "??", "...", "!"):
            return words[:-1] + [words[-1].rstrip("?!.") + closer]
        return words + closer.split()

    def reorder(self, words: list[str]) -> list[str]:
        """Move the last one to three words to the front ("how many shares of AAPL" -> "AAPL how many shares of")."""
        if len(words) < 3:
            return words
        k = self.rng.randint(1, min(3, len(words) - 1))
        tail = [w.rstrip("?!.,") for w in words[-k:]]
        joiner = self.rng.choice([[], [], ["-"], [":"]])
        return tail + joiner + words[:-k]

    def casing(self, words: list[str]) -> list[str]:
        r = self.rng.random()
        if r < 0.6:
            return [w.lower() for w in words]
        if r < 0.75:
            return [w.upper() for w in words]
        if r < 0.9:
            return [w.lower() for w in words[:1]] + words[1:]
        return [w.capitalize() if self.rng.random() < 0.5 else w for w in words]

    def punctuation(self, words: list[str]) -> list[str]:
        last = words[-1].rstrip("?!.,")
        if not last:
            return words
        stripped = [re.sub(r"[?!.,;:]+$", "", w) for w in words[:-1]] + [last]
        return stripped if self.rng.random() < 0.6 else stripped[:-1] + [last + self.rng.choice(["?", "?", "??", ".", "!"])]
