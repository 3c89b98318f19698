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

#: ``--dqd-emitter`` names of the DQD search (:class:`~evoemotion.search.DqdSearch`).
DQD_EMITTERS = ("cma-mega", "cma-maega", "omg-mega")

#: ``--dqd-optimizer``: pyribs' gradient optimisers of the CMA-MEGA solution point.
GRADIENT_OPTIMIZERS = ("adam", "gradient_ascent")

#: Keyword defaults of :class:`~evoemotion.search.DqdSearch`.
DQD_DEFAULTS = {
    "emitter": "cma-mega",
    "emitters": 4,
    "sigma": 1.0,
    "lr": 1.0,
    "optimizer": "gradient_ascent",
    "archive_lr": 0.1,
}

#: ``--renderer`` values of the Evaluator: ``auto`` is ``torch`` for flat CPPNs on CUDA.
RENDERERS = ("auto", "numba", "torch")
