"""Natural English sentences for the embedded corpus, generated from a small grammar.

Written for this project (no copyrighted text). Words are common ones that the
pocketsphinx English dictionary knows, so the offline aligner and ASR can handle them.
"""

from __future__ import annotations

import numpy as np

_V = {
    "name": ["John", "Mary", "Sarah", "David", "Anna", "Peter", "Laura", "James", "Emma", "Robert",
             "Lucy", "Thomas", "Alice", "Henry", "Kate", "Daniel", "Helen", "Frank", "Grace", "Paul"],
    "adj": ["quiet", "old", "small", "bright", "heavy", "warm", "green", "narrow", "busy", "tall",
            "cold", "empty", "friendly", "broken", "yellow", "careful", "strange", "gentle", "young", "dark"],
    "noun": ["river", "teacher", "window", "garden", "doctor", "kitchen", "letter", "village", "horse",
             "table", "station", "farmer", "bridge", "market", "painter", "basket", "mountain", "student",
             "bottle", "forest", "driver", "picture", "sister", "engine", "pocket"],
    "noun_pl": ["apples", "books", "chairs", "boats", "stones", "letters", "birds", "tickets", "cups",
                "flowers", "shoes", "candles", "keys", "papers", "boxes", "coins"],
    "verb_past": ["carried", "found", "painted", "opened", "watched", "followed", "cleaned", "moved",
                  "visited", "closed", "counted", "dropped", "fixed", "passed", "remembered", "answered"],
    "verb_base": ["carry", "find", "paint", "open", "watch", "follow", "clean", "move", "visit", "close",
                  "count", "fix", "wash", "read", "build", "check"],
    "prep": ["near", "behind", "under", "beside", "across", "inside", "around", "past", "over", "toward"],
    "time": ["this morning", "last night", "after lunch", "on sunday", "every evening", "before dinner",
             "in the spring", "yesterday", "at noon", "during the storm", "next week", "long ago"],
    "place": ["at home", "in the park", "by the sea", "in the city", "at the school", "on the hill",
              "in the library", "at the station", "by the lake", "in the market"],
    "adverb": ["slowly", "quickly", "quietly", "loudly", "carefully", "early", "late", "often"],
    "number": ["two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "twelve"],
    "relative": ["brother", "sister", "mother", "father", "uncle", "aunt", "friend", "cousin", "neighbor"],
    "weather": ["cold", "windy", "sunny", "rainy", "foggy", "warm", "quiet", "late"],
}

_TEMPLATES = [
    "The {adj} {noun} {verb_past} the {noun} {prep} the {noun}.",
    "{name} {verb_past} a {adj} {noun} {time}.",
    "Please {verb_base} the {noun} before we leave {place}.",
    "Why did the {noun} {verb_base} the {noun_pl} so {adverb}?",
    "We {verb_past} {number} {noun_pl} {place} {time}.",
    "My {relative} likes to {verb_base} {noun_pl} {place}.",
    "It was {weather} {time}, so {name} stayed {place}.",
    "The {noun} is {adj}, but the {noun} is {adj}.",
    "{name} and {name} {verb_past} the {adj} {noun} {adverb}.",
    "Have you seen the {adj} {noun} {prep} the {noun}?",
    "Every {noun} in the {noun} {verb_past} {number} {noun_pl}.",
    "{name} said that the {noun} would {verb_base} the {noun_pl} {time}.",
    "I think my {relative} {verb_past} the {noun} {place}.",
    "There are {number} {adj} {noun_pl} {prep} the {noun}.",
]


def _fill(template: str, rng: np.random.Generator) -> str:
    out, i = [], 0
    while i < len(template):
        if template[i] == "{":
            j = template.index("}", i)
            choices = _V[template[i + 1 : j]]
            out.append(choices[int(rng.integers(len(choices)))])
            i = j + 1
        else:
            out.append(template[i])
            i += 1
    text = "".join(out)
    return text[0].upper() + text[1:]


def generate_sentences(n: int, seed: int) -> list[str]:
    """``n`` distinct sentences, the same for the same ``seed``."""
    rng = np.random.default_rng(seed)
    seen: dict[str, None] = {}
    attempts = 0
    while len(seen) < n:
        template = _TEMPLATES[int(rng.integers(len(_TEMPLATES)))]
        seen.setdefault(_fill(template, rng), None)
        attempts += 1
        if attempts > 100 * n + 1000:
            raise ValueError(f"cannot generate {n} distinct sentences from the grammar")
    return list(seen)
