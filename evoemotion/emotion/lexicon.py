"""Lexicon-derived valence, arousal and dominance from text (Warriner et al. 2013 norms).

The Warriner norms rate 13,915 English lemmas on 1-9 scales. Text such as an OASIS theme
("Dead bodies 3", "Acorns 1") is split into words, each word is lemmatised with a small
lexicon-guided rule set (plural, -ing, -ed, comparative endings and a few irregular forms;
a candidate lemma is accepted only if the lexicon has it; an unknown closed compound such as
"paperclips" falls back to its two lemmatised parts), and the ratings of the words found are
averaged — the way Zhao et al. (ACM MM 2016) derived VAD for images from descriptions.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from pathlib import Path

from evoemotion.errors import DataError

#: Lexicon columns read, by output name.
WARRINER_COLUMNS = {"valence": "V.Mean.Sum", "arousal": "A.Mean.Sum", "dominance": "D.Mean.Sum"}

#: Irregular plurals and participles a suffix rule cannot undo.
IRREGULAR = {
    "children": "child",
    "people": "person",
    "men": "man",
    "women": "woman",
    "feet": "foot",
    "teeth": "tooth",
    "mice": "mouse",
    "geese": "goose",
    "dying": "die",
    "lying": "lie",
    "ran": "run",
    "shot": "shoot",
    "broken": "break",
}

#: (suffix, replacement) rules tried in order; each candidate must be a lexicon lemma.
SUFFIX_RULES = (
    ("ies", "y"),
    ("ves", "f"),
    ("ves", "fe"),
    ("ses", "s"),
    ("xes", "x"),
    ("ches", "ch"),
    ("shes", "sh"),
    ("es", "e"),
    ("s", ""),
    ("ied", "y"),
    ("ed", ""),
    ("ed", "e"),
    ("ing", ""),
    ("ing", "e"),
    ("ier", "y"),
    ("iest", "y"),
    ("er", ""),
    ("est", ""),
)

_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")


@dataclass(frozen=True)
class Lexicon:
    """Word -> (valence, arousal, dominance) norms on a 1-9 scale.

    Attributes:
        path: The file the norms came from.
        norms: Lemma -> ratings in the order of :data:`WARRINER_COLUMNS`.
    """

    path: Path
    norms: dict[str, tuple[float, float, float]]

    def lemmatise(self, word: str) -> str | None:
        """Return the lexicon lemma of ``word``, or ``None`` if no rule finds one.

        Args:
            word: One lower- or mixed-case word.

        Returns:
            The word itself if it is a lemma, else the first lemma a rule produces.
        """
        word = word.lower()
        if word in self.norms:
            return word
        if IRREGULAR.get(word) in self.norms:
            return IRREGULAR[word]
        for suffix, replacement in SUFFIX_RULES:
            if len(word) > len(suffix) + 1 and word.endswith(suffix):
                stem = word[: -len(suffix)] + replacement
                if stem in self.norms:
                    return stem
                # doubled final consonant: "swimming" -> "swim", "shopped" -> "shop"
                if replacement == "" and len(stem) > 2 and stem[-1] == stem[-2]:
                    if stem[:-1] in self.norms:
                        return stem[:-1]
        return None

    def lemmas(self, word: str) -> list[str]:
        """Return the lemma of ``word``, or the lemmas of its two parts if it is a compound.

        Args:
            word: One word.

        Returns:
            ``[lemma]``, ``[first, second]`` for a closed compound of two lexicon words
            (each part at least 3 letters; the first split from the left wins), or ``[]``.
        """
        lemma = self.lemmatise(word)
        if lemma:
            return [lemma]
        for cut in range(3, len(word) - 2):
            head, tail = self.lemmatise(word[:cut]), self.lemmatise(word[cut:])
            if head and tail:
                return [head, tail]
        return []

    def rate(self, text: str) -> dict[str, float]:
        """Average the norms of the words of ``text`` found in the lexicon.

        Args:
            text: Free text; digits and punctuation are ignored.

        Returns:
            ``{"valence", "arousal", "dominance"}`` means, NaN when no word is found.
        """
        words = _WORD.findall(text.lower())
        found = [self.norms[lemma] for w in words for lemma in self.lemmas(w)]
        names = list(WARRINER_COLUMNS)
        if not found:
            return {name: math.nan for name in names}
        return {name: sum(r[i] for r in found) / len(found) for i, name in enumerate(names)}


def load_warriner(path: str | Path) -> Lexicon:
    """Read the Warriner et al. (2013) norms CSV.

    Args:
        path: ``warriner2013.csv`` with columns ``Word``, ``V.Mean.Sum``, ``A.Mean.Sum``,
            ``D.Mean.Sum`` (others ignored).

    Returns:
        The lexicon.

    Raises:
        DataError: the file is missing, lacks a column, or holds a non-numeric rating.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"lexicon file {path} not found")
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        needed = ["Word", *WARRINER_COLUMNS.values()]
        missing = [c for c in needed if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"lexicon file {path} lacks column(s) {missing}")
        norms = {}
        for line, row in enumerate(reader, start=2):
            try:
                ratings = tuple(float(row[c]) for c in WARRINER_COLUMNS.values())
            except ValueError as err:
                raise DataError(f"lexicon file {path} line {line}: {err}") from err
            norms[row["Word"].strip().lower()] = ratings
    return Lexicon(path, norms)
