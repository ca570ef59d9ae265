"""The analysis definition (cuts, weights, variations, histograms), its validation, hash and loading."""
