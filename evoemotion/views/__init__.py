"""Looking at runs: plots, posters, analysis and the HTML gallery.

- :mod:`~evoemotion.views.runview`: a run folder's elites, read from its latest checkpoint.
- :mod:`~evoemotion.views.layout`: where each elite goes in a mosaic (plots and gallery).
- :mod:`~evoemotion.views.mosaic` / :mod:`~evoemotion.views.plots`: matplotlib figures.
- :mod:`~evoemotion.views.features` / :mod:`~evoemotion.views.analysis` /
  :mod:`~evoemotion.views.study`: image features, statistics, the ``analyze`` report.
- :mod:`~evoemotion.views.gallery` (+ ``gallery.html``): the static HTML gallery.
- :mod:`~evoemotion.views.posters`: elites re-rendered at poster size.
"""
