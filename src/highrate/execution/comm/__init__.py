"""The ``broker://`` Dask comm backend and the broker it talks to (``highrate broker``).

``protocol`` (addresses, frames, the token proof) and ``settings`` (Dask config keys) are pure;
``broker``, ``link`` and ``tls`` are the broker's server; ``peer``, ``listener`` and ``backend`` are
a Dask process's side; ``relay`` and ``streams`` serve both. ``serve`` runs a broker until stopped.
"""
