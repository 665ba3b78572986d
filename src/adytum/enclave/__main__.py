"""`python -m adytum.enclave`: one enclave process. The host starts it; nothing else should."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .service import serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m adytum.enclave",
                                     description="Run one (simulated) enclave speaking the framed "
                                                 "channel on stdin/stdout. Started by `adytum up`.")
    parser.add_argument("--data-dir", type=Path, required=True, help="where sealed keys live")
    parser.add_argument("--worker-id", required=True, help="hex worker id the keys belong to")
    parser.add_argument("--avalon-compat", action="store_true",
                        help="also accept Avalon clients (OAEP-SHA1, one IV for everything): weaker")
    args = parser.parse_args(argv)
    # One line per record, "LEVEL message": the host re-logs it with its own structure.
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(message)s")
    return serve(args.data_dir, args.worker_id.lower(), args.avalon_compat)


if __name__ == "__main__":
    sys.exit(main())
