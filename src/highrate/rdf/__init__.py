"""RDataFrame analyses on highrate's datasets, executors and outputs (``pip install 'highrate[rdf]'``).

An analysis file that defines ``def build(df, dataset)`` instead of ``analysis = Analysis(...)``
books its results on a ``ROOT.RDataFrame``; :func:`highrate.rdf.running.run_rdf` runs it per file
(sequential, processes) or per dataset with DistRDF (Dask) and writes highrate's outputs.
"""
