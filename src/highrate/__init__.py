"""highrate: high-rate declarative columnar analysis."""
