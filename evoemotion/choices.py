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

#: ``--dqd-restart``: when a CMA-MEGA emitter starts again from an archive elite (pyribs'
#: ``restart_rule``): after an iteration in which no branch entered the archive, or only
#: when its CMA-ES has converged.
DQD_RESTARTS = ("no-improvement", "basic")

#: Keyword defaults of :class:`~evoemotion.search.DqdSearch` (CMA-MAEGA restarts ``basic``).
DQD_DEFAULTS = {
    "emitter": "cma-mega",
    "emitters": 4,
    "sigma": 1.0,
    "lr": 1.0,
    "optimizer": "gradient_ascent",
    "restart": "no-improvement",
    "archive_lr": 0.1,
}

#: CMA-MEGA's defaults that differ on ``per-class``, whose measures have no gradient: every
#: branch lies on the line of the objective's gradient, and a branch enters the archive
#: only by beating its class's best image, so ``no-improvement`` restarts almost every
#: iteration. Three emitters per class, small coefficient steps, Adam, converged restarts
#: (``benchmarks/README.md``, DQD, seventh pass).
DQD_PER_CLASS_DEFAULTS = {
    "emitters": 3,
    "sigma": 0.01,
    "lr": 0.05,
    "optimizer": "adam",
    "restart": "basic",
}

#: ``--renderer`` values of the Evaluator: ``auto`` is ``torch`` for flat CPPNs on CUDA.
RENDERERS = ("auto", "numba", "torch")
