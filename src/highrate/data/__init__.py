"""Where the events are: datasets, Rucio, replicas, credentials, partitioning into chunks, and ``io/``."""
