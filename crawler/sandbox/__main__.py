"""``python -m crawler.sandbox serve [--sample] [--state-dir DIR]``: run the world in the foreground.

(``python -m crawler.sandbox scale --dir DIR …`` runs the benchmark's scale
world instead; see ``remote``.)

Prints one JSON line with the world's URLs and (fake, sandbox-only) tokens, then
serves until SIGINT/SIGTERM. Used by the benchmark and for manual trials.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

from . import remote
from .sample import build_sample_org
from .world import World


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crawler.sandbox", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="start the world and print its URLs as one JSON line")
    serve.add_argument("--sample", action="store_true", help="push the sample org (acme) and user (mona)")
    serve.add_argument("--state-dir", help="directory for the registry's storage and log (default: a temp dir)")
    serve.add_argument("--validate", action="store_true", help="validate served REST bodies against the OpenAPI")
    serve.add_argument("--graphql-lists-containers", action="store_true", help="GHES behaviour for packages(DOCKER)")
    serve.add_argument("--latency-ms", type=float, default=0.0, help="added latency per request on both fronts")
    scaled = sub.add_parser("scale", help="an org at benchmark scale, driven over stdin (see crawler.sandbox.remote)")
    remote.add_arguments(scaled)
    args = parser.parse_args(argv)
    if args.command == "scale":
        return remote.serve(args)

    world = World(
        args.state_dir,
        validate=args.validate,
        graphql_lists_containers=args.graphql_lists_containers,
        registry_latency_ms=args.latency_ms,
        api_latency_ms=args.latency_ms,
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with world:
        info = world.describe()
        if args.sample:
            sample = build_sample_org(world)
            info["sample"] = {"owners": [list(o) for o in sample.owners], "packages": len(sample.packages)}
        print(json.dumps(info), flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
