"""The sync engine (docs/architecture.md "Pipeline"):

    run.py      the run lifecycle: lock, run row, stop signal and timeout, outcome
    owner.py    one owner's pipeline: discovery -> package queue -> workers -> writer
    worker.py   one package: listing, tag -> digest, fetch and verify content
    writer.py   the single writer task: typed writes, one transaction each
    wiring.py   the clients built from the config (HTTP, registry, REST, GraphQL)
    state.py    the run's state: summary, lower bound, content in flight
    policy.py   what an error ends: the package, the owner or the run
"""

from .run import Progress, SyncOptions, run_sync
from .state import RunSummary
from .wiring import Clocks

__all__ = ["Clocks", "Progress", "RunSummary", "SyncOptions", "run_sync"]
