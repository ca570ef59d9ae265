"""The stages of one chunk, one module per kind: ``pipeline`` (the order), ``cuts`` (skim,
preselection, categories), ``objects``, ``downstream`` (everything after the objects, per shape
variation), and the recorders of a real (``chunk_recorder``) or traced (``trace_recorder``) pass."""
