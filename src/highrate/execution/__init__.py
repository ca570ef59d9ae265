"""Running an analysis over datasets: the runner, workers, checkpoints, ``executors/``, ``clusters/``."""
