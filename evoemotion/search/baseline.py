"""The random-search baseline: fresh random genomes into the same archive.

Every iteration draws ``batch_size`` new genomes from the genotype's own ``random`` and
offers them to the archive. With the same evaluation budget and archive spec as a
MAP-Elites run, its QD score is what MAP-Elites has to beat.
"""

from __future__ import annotations

import numpy as np

from evoemotion.search.archive_search import ArchiveSearch, as_solutions


class RandomSearch(ArchiveSearch):
    """Random-search run state (see :class:`ArchiveSearch` for the arguments)."""

    name = "random"

    def ask(self) -> np.ndarray:
        """Draw a batch of fresh random genomes.

        Returns:
            ``batch_size`` genomes packed for the archive.
        """
        genomes = self.genotype.random(self.rng, self.batch_size)
        return as_solutions(genomes, self.archive.solution_dim)
