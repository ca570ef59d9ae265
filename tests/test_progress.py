"""Live progress from Python: cumulative counts that end at the run's totals, per worker."""

from __future__ import annotations

import highrate


def test_progress_reports_totals_and_workers(sample, zmumu_path):
    analysis = highrate.load_analysis(zmumu_path)
    datasets = highrate.load_datasets(sample)
    seen: list[highrate.Progress] = []
    options = highrate.RunOptions(executor="processes", workers=2, chunk_size=4000)
    outcome = highrate.run(analysis, datasets, options=options, progress=seen.append)
    chunks = [p for p in seen if p.stage == "chunks"]
    files = [p for p in seen if p.stage == "files"]
    assert files[-1].done == files[-1].total == sum(len(d.files) for d in datasets)
    last = chunks[-1]
    counts = outcome.result.counts.values()
    assert last.done == last.total == outcome.chunks
    assert last.events == sum(c["total"] for c in counts)
    assert last.skimmed == sum(c["skimmed"] for c in counts)
    assert last.preselected == sum(c["preselected"] for c in counts)
    assert last.bytes_read == sum(c["bytes_read"] for c in counts)
    assert [p.done for p in chunks] == sorted(p.done for p in chunks)  # monotonic
    assert len(last.workers) == 2  # both worker processes took chunks
    assert sum(w["chunks"] for w in last.workers.values()) == outcome.chunks
    assert sum(w["events"] for w in last.workers.values()) == last.events
    assert last.rate(last.events) > 0
