"""Real storage and catalogue servers on 127.0.0.1 for the tests and benchmarks: XRootD and nginx
(HTTPS/WebDAV) in ``storage``, a Rucio server in ``rucio``. They are not part of the installed
package; ``bash .ci/install-storage.sh`` and ``bash .ci/install-rucio.sh`` install their binaries."""
