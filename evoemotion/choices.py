"""Names of the pluggable parts of a search, and each search's default settings.

This module imports nothing, so the command line builds its ``choices`` and help texts
from it without importing pyribs (which imports torch) before a command runs. The search
classes take the same names and their keyword defaults from here, so each is written once.
"""

from __future__ import annotations

#: ``--emitter`` names of MAP-Elites; all but ``genome`` need a flat-vector genotype.
EMITTERS = ("cma-me", "iso-line", "gaussian", "genome")

#: ``--behavior`` names of novelty search: the descriptor read from the outputs.
BEHAVIORS = ("measures", "probs", "vad", "embedding")

#: ``--novelty-archive`` add policies.
NOVELTY_POLICIES = ("threshold", "random")

#: Keyword defaults of :class:`~evoemotion.search.MapElites`.
MAP_ELITES_DEFAULTS = {"emitters": 4, "sigma": 0.2, "line_sigma": 0.2}

#: Keyword defaults of :class:`~evoemotion.search.NoveltySearch` (and NSLC).
NOVELTY_DEFAULTS = {
    "behavior": "measures",
    "k": 15,
    "novelty_policy": "threshold",
    "novelty_add_prob": 0.05,
    "novelty_cap": 2000,
}
