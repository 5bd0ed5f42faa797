"""`sync --full` repairs what is stored, object by object, on both stores:
the stored rows are read a table at a time for the whole package (a few
statements, not several an object), and each object is still compared on
its own — the ones tampered with repaired and counted, the others left."""

from __future__ import annotations

import asyncio

from tests.support import execute, rows
from tests.test_store import image, result


async def test_full_resync_repairs_each_object_of_a_package_and_only_those(opened, db):
    owner = await opened.writer.ensure_owner("ghcr.io", "acme", "org", "rest")
    imgs = [image(20 + n, {"n": str(n), "team": "core"}) for n in range(3)]
    tags = {f"v{n}": m.digest for n, (m, _) in enumerate(imgs)}
    await opened.writer.apply_package(owner, result("app", imgs, tags))
    layers = "SELECT manifest_digest, position, digest, size FROM layers ORDER BY manifest_digest, position"
    before = await asyncio.to_thread(rows, db, layers)
    for sql, params in (("UPDATE layers SET size = 7 WHERE manifest_digest = ?", (imgs[0][0].digest,)),
                        ("DELETE FROM config_labels WHERE config_digest = ? AND key = 'team'", (imgs[1][1].digest,)),
                        ("UPDATE configs SET os = 'plan9' WHERE digest = ?", (imgs[2][1].digest,))):
        await asyncio.to_thread(execute, db, sql, params)
    applied = await opened.writer.apply_package(owner, result("app", imgs, tags, full=True))
    assert (applied.corrected, applied.manifests_new) == (3, 0)
    assert await asyncio.to_thread(rows, db, layers) == before
    assert await asyncio.to_thread(rows, db, "SELECT COUNT(*) FROM config_labels WHERE key = 'team'") == [(3,)]
    assert await asyncio.to_thread(rows, db, "SELECT DISTINCT os FROM configs") == [("linux",)]
    again = await opened.writer.apply_package(owner, result("app", imgs, tags, full=True))
    assert again.corrected == 0
