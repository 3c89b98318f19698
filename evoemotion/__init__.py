"""evoemotion: evolve images that show what image-emotion classifiers have learned.

The package follows one image from genome to gallery, one stage per module:

genome (``genotypes``) -> render (``render``, Numba) -> score (``scoring``, torch) ->
archive / novelty (``archives``, ``search``) -> run folder (``runs``) -> views (``views``).
"""

__version__ = "0.1.0"
