"""The inventory store: protocols (`protocol.py`), pure row builders
(`rows.py`) and the implementations (`sqlite.py`).

`open_store` is the one place that picks an implementation from the
config; everything above the store talks to `Store`, `StoreReader` and
`StoreWriter` only.
"""

from __future__ import annotations

from ..config import DatabaseConfig
from ..model import RegistryFacts
from .protocol import (Applied, AttestationRow, Coverage, DueDigests, EventLog, EventRecord, RepositoryRow,
                       RunRecord, Store, StoreReader, StoreWriter)
from .sqlite import SQLiteStore, apply_schema, schema_text

__all__ = ["Applied", "AttestationRow", "Coverage", "DueDigests", "EventLog", "EventRecord", "RegistryFacts",
           "RepositoryRow", "RunRecord",
           "SQLiteStore", "Store", "StoreReader", "StoreWriter", "apply_schema", "open_store", "schema_text"]


async def open_store(database: DatabaseConfig) -> Store:
    """Open (creating or migrating) the inventory the config names."""
    return await SQLiteStore.open(database.path)
