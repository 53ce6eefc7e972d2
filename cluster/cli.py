"""The ``aisci`` command line.

    aisci demo                      # a short tour of the bus on the local root
    aisci bus ls | log P | query ... | compact | repair

``--root`` (or ``AISCI_ROOT``) picks the bus root; default ``~/.aisci``.
"""

from __future__ import annotations

import argparse
import sys

from bus import Bus, BusError

from . import cli_bus, demo


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aisci", description=__doc__.split("\n")[0])
    parser.add_argument("--root", help="bus root folder (default: $AISCI_ROOT or ~/.aisci)")
    sub = parser.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("demo", help="create demo projects on the bus, write and query them")
    d.set_defaults(func=lambda bus, args: demo.run(bus))
    cli_bus.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        bus = Bus(args.root)
        args.func(bus, args)
    except BusError as e:
        print(f"aisci: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
