"""What happens to one chunk: events from columns, tracing, the stage pipeline, binning, results."""
