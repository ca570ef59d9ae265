"""The public API: what `import highrate` exports, and nothing more."""

import highrate


def test_public_api_snapshot():
    assert sorted(highrate.__all__) == sorted([
        "Analysis", "Axis", "Columns", "Cut", "Dataset", "HighrateError", "Histogram", "Progress", "Result",
        "RunOptions", "RunOutcome", "Session", "ShapeVariation", "Weight", "__version__", "accumulate", "load_analysis",
        "load_datasets", "run",
    ])
    for name in highrate.__all__:
        assert hasattr(highrate, name)


def test_version_matches_package_metadata():
    from importlib.metadata import version

    assert highrate.__version__ == version("highrate")
