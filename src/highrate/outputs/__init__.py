"""Outputs: histograms (ROOT and pickle) and the run report."""
