"""``highrate broker``: the connection broker for Dask clusters whose workers accept no connections.

Kept apart from ``main.py``, which only adds the verb; the broker itself is ``execution/comm/``.
"""

from __future__ import annotations

import argparse
import logging


def add_broker_parser(sub: argparse._SubParsersAction) -> None:
    """The ``broker`` verb and its options."""
    broker = sub.add_parser(
        "broker", help="run the connection broker: one open port for a Dask cluster behind a firewall",
        description="Serve broker:// for Dask: schedulers, workers and nannies register over connections they "
        "open themselves, and every connection to them goes through this one port (see docs/how-to/broker.md).",
    )
    broker.add_argument("--host", default="0.0.0.0", help="address to listen on (default: %(default)s)")
    broker.add_argument("--port", type=int, default=8786, help="(default: %(default)s)")
    broker.add_argument("--token-file", default=None, metavar="FILE",
                        help="the clusters' tokens, 'TOKEN' or 'CLUSTER TOKEN' a line (default: Dask config "
                        "highrate.broker.token-file)")
    broker.add_argument("--tls-cert", default=None, metavar="FILE", help="the broker's certificate (PEM)")
    broker.add_argument("--tls-key", default=None, metavar="FILE", help="its key, unless in --tls-cert")
    broker.add_argument("--tls-ca-file", default=None, metavar="FILE", help="the CA of the cluster's certificates")
    broker.add_argument("--heartbeat", type=float, default=10.0, metavar="S",
                        help="ping registrations every S seconds, drop those silent for 3 (default: %(default)s)")
    # SUPPRESS keeps `highrate --debug broker` working: a subcommand default would override it
    broker.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks and debug logging")
    broker.set_defaults(handler=_cmd_broker)


def _cmd_broker(args: argparse.Namespace) -> int:
    from highrate.execution.comm.serve import broker_tls, broker_tokens, run_broker

    tokens, tls = broker_tokens(args.token_file), broker_tls(args.tls_cert, args.tls_key, args.tls_ca_file)
    # the broker's log is its record of registrations and refusals: shown without --debug
    logging.getLogger("highrate.execution.comm").setLevel(logging.DEBUG if args.debug else logging.INFO)

    def ready(broker) -> None:
        print(f"broker listening on broker://{broker.host}:{broker.port} ({'TLS' if tls else 'no TLS'}; "
              f"cluster(s): {', '.join(sorted(tokens))})", flush=True)

    run_broker(host=args.host, port=args.port, tokens=tokens, tls=tls, heartbeat=args.heartbeat, ready=ready)
    return 0
