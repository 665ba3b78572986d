"""`adytum up`: a long-running node until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from .. import logs
from ..issuer.quoter import DevRootError
from ..manager import EnclaveDied, EnclaveStartError
from ..config import NodeConfig
from ..node import Node


def run_up(args: argparse.Namespace) -> int:
    logs.setup(args.log_format)
    config = NodeConfig.of(args.data_dir, host=args.host, port=args.port, max_body=args.max_body,
                           max_pending=args.max_pending, durable=not args.no_fsync,
                           worker_name=args.worker_name, enclaves=args.enclaves, avalon_compat=args.avalon_compat,
                           allowed_mr_enclaves=tuple(args.allow_mrenclave), time_budget=args.time_budget,
                           memory_mb=args.memory_mb, attestation_lifetime=args.attestation_lifetime,
                           join=args.join, kme_listen=args.kme_listen)
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    try:
        return asyncio.run(_serve(config))
    except (EnclaveStartError, EnclaveDied, DevRootError, OSError, ValueError) as exc:
        logging.getLogger("adytum.node").error("the node cannot start: %s", exc)
        return 1


async def _serve(config: NodeConfig) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    node = Node(config)
    await node.serve_forever(stop)
    return 0
