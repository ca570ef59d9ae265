"""The ``highrate`` command: its verbs (``main``), the terminal output and the demo's inputs."""
