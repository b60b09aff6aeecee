"""A bigram language model in ARPA format from transcripts, for pocketsphinx's decoder.

Absolute discounting with back-off (discount ``D`` on every seen bigram, its mass spread over
the add-one-smoothed unigram distribution). Small and exact enough for an in-domain LM trained on
the training transcripts; sentence boundaries are ``<s>`` / ``</s>`` as ARPA expects."""

from __future__ import annotations

import math
from collections import Counter
from typing import Callable, Iterable

BOS, EOS = "<s>", "</s>"


def bigram_arpa(sentences: Iterable[list[str]], discount: float = 0.5) -> str:
    """ARPA text of a bigram LM over ``sentences`` (lists of words)."""
    uni: Counter = Counter()
    bi: Counter = Counter()
    history: Counter = Counter()
    for words in sentences:
        seq = [BOS, *words, EOS]
        uni.update(seq[1:])
        for u, w in zip(seq[:-1], seq[1:]):
            bi[(u, w)] += 1
            history[u] += 1
    if not uni:
        raise ValueError("bigram_arpa: no sentences")
    vocab = sorted(uni)
    total = sum(uni.values()) + len(vocab)
    p_uni = {w: (uni[w] + 1) / total for w in vocab}
    followers: dict[str, list[str]] = {}
    for u, w in bi:
        followers.setdefault(u, []).append(w)
    p_bi, backoff = {}, {}
    for u, ws in followers.items():
        for w in ws:
            p_bi[(u, w)] = (bi[(u, w)] - discount) / history[u]
        left = 1.0 - sum(p_bi[(u, w)] for w in ws)
        rest = 1.0 - sum(p_uni.get(w, 0.0) for w in ws)
        backoff[u] = left / rest if rest > 0 else 1.0
    lines = ["\\data\\", f"ngram 1={len(vocab) + 1}", f"ngram 2={len(p_bi)}", "", "\\1-grams:"]
    lines.append(f"-99.0000 {BOS} {math.log10(backoff.get(BOS, 1.0)):.6f}")
    for w in vocab:
        lines.append(f"{math.log10(p_uni[w]):.6f} {w} {math.log10(backoff.get(w, 1.0)):.6f}")
    lines += ["", "\\2-grams:"]
    lines += [f"{math.log10(p):.6f} {u} {w}" for (u, w), p in sorted(p_bi.items())]
    lines += ["", "\\end\\", ""]
    return "\n".join(lines)


def lm_sentences(texts: Iterable[str], known: Callable[[str], bool]) -> Iterable[list[str]]:
    """Lower-cased word lists of ``texts``; a word the recogniser's dictionary lacks splits the
    sentence there (an LM entry without a pronunciation is useless to the decoder)."""
    from ..base.words import normalize, transcript_words

    for text in texts:
        run: list[str] = []
        for span in transcript_words(text):
            word = normalize(span.word)
            if known(word):
                run.append(word)
            elif run:
                yield run
                run = []
        if run:
            yield run
