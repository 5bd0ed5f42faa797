-- ghcr-inventory schema: the single source of the database layout.
--
-- Tables are the developers' normalised design; the v_* views at the end are
-- the stable, documented query surface (DESIGN.md "SQL contract"). Columns
-- after the documented ones may be added; documented ones never change.
-- Timestamps are ISO-8601 UTC text ("2026-01-02T03:04:05Z"); digests are
-- "sha256:<hex>". Views avoid SQLite-only syntax where that costs nothing, so
-- the same surface can be served from PostgreSQL (DESIGN.md "Scale path").
--
-- The store applies this file to a new database and records
-- schema_version = 1; older databases are brought forward by the migrations
-- in crawler/store.py. Views are dropped and recreated at every open.

CREATE TABLE IF NOT EXISTS schema_version (
    version     INTEGER NOT NULL
);

-- One row per (registry, owner) the config ever named.
CREATE TABLE IF NOT EXISTS owners (
    id          INTEGER PRIMARY KEY,
    registry    TEXT NOT NULL,              -- registry host, e.g. ghcr.io
    name        TEXT NOT NULL,              -- GitHub login as configured
    kind        TEXT NOT NULL,              -- org | user
    discovery   TEXT NOT NULL,              -- rest | graphql | catalog | static
    first_seen  TEXT NOT NULL,
    UNIQUE (registry, name)
);

-- A package (= a registry repository OWNER/NAME). Written only in the
-- package's own transaction, so updated_at/version_count are the discovery
-- values of the last successful sync: comparing them with a fresh listing is
-- the change detection.
CREATE TABLE IF NOT EXISTS packages (
    id             INTEGER PRIMARY KEY,
    owner_id       INTEGER NOT NULL REFERENCES owners (id),
    name           TEXT NOT NULL,           -- may contain '/', e.g. team/app/api
    github_id      INTEGER,
    visibility     TEXT,                    -- public | private | internal
    repository     TEXT,                    -- source repo OWNER/NAME (GitHub)
    html_url       TEXT,
    version_count  INTEGER,
    created_at     TEXT,                    -- GitHub's timestamps
    updated_at     TEXT,
    first_seen     TEXT NOT NULL,
    last_synced    TEXT,
    deleted_at     TEXT,                    -- set when a complete listing lacks it
    UNIQUE (owner_id, name)
);

-- Content-addressed manifests: immutable once written (only `sync --full`
-- repairs a row that disagrees with the bytes the registry serves).
CREATE TABLE IF NOT EXISTS manifests (
    digest         TEXT PRIMARY KEY,
    media_type     TEXT NOT NULL,
    kind           TEXT NOT NULL,           -- index|image|signature|attestation|sbom|artifact
    artifact_type  TEXT,
    size           INTEGER NOT NULL,        -- bytes of the manifest itself
    content_size   INTEGER,                 -- config + layers (compressed); NULL for an index
    config_digest  TEXT,
    layer_count    INTEGER,
    subject_digest TEXT,
    created        TEXT,                    -- image created (label, annotation or config)
    source         TEXT,                    -- org.opencontainers.image.source
    revision       TEXT,
    description    TEXT,
    licenses       TEXT,
    os             TEXT,                    -- from the image config
    architecture   TEXT,
    variant        TEXT,
    os_version     TEXT,
    fetched_at     TEXT NOT NULL
);

-- Entries of an index / manifest list, with their platform.
CREATE TABLE IF NOT EXISTS manifest_children (
    parent_digest    TEXT NOT NULL,
    position         INTEGER NOT NULL,
    child_digest     TEXT NOT NULL,
    media_type       TEXT NOT NULL,
    size             INTEGER NOT NULL,
    platform         TEXT,                  -- os/arch[/variant]
    os               TEXT,
    architecture     TEXT,
    variant          TEXT,
    os_version       TEXT,
    reference_type   TEXT,                  -- vnd.docker.reference.type
    reference_digest TEXT,                  -- vnd.docker.reference.digest
    PRIMARY KEY (parent_digest, position)
);
CREATE INDEX IF NOT EXISTS manifest_children_child ON manifest_children (child_digest);

CREATE TABLE IF NOT EXISTS layers (
    manifest_digest TEXT NOT NULL,
    position        INTEGER NOT NULL,
    digest          TEXT NOT NULL,
    media_type      TEXT NOT NULL,
    size            INTEGER NOT NULL,
    urls            TEXT,                   -- JSON array for foreign layers
    PRIMARY KEY (manifest_digest, position)
);
CREATE INDEX IF NOT EXISTS layers_digest ON layers (digest);

-- Image config blobs, fetched once per digest.
CREATE TABLE IF NOT EXISTS configs (
    digest       TEXT PRIMARY KEY,
    os           TEXT,
    architecture TEXT,
    variant      TEXT,
    os_version   TEXT,
    created      TEXT,
    fetched_at   TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS config_labels (
    config_digest TEXT NOT NULL,
    key           TEXT NOT NULL,
    value         TEXT NOT NULL,
    PRIMARY KEY (config_digest, key)
);

CREATE TABLE IF NOT EXISTS annotations (
    digest TEXT NOT NULL,                   -- manifest digest
    key    TEXT NOT NULL,
    value  TEXT NOT NULL,
    PRIMARY KEY (digest, key)
);

-- Which digests a package holds (GitHub: its versions; elsewhere: what its
-- tags reach). last_seen NULL while present.
CREATE TABLE IF NOT EXISTS package_digests (
    package_id INTEGER NOT NULL REFERENCES packages (id),
    digest     TEXT NOT NULL,
    version_id INTEGER,                     -- GitHub package version id
    created_at TEXT,                        -- GitHub's version timestamps
    updated_at TEXT,
    first_seen TEXT NOT NULL,
    last_seen  TEXT,
    PRIMARY KEY (package_id, digest)
);
CREATE INDEX IF NOT EXISTS package_digests_digest ON package_digests (digest);

-- Tag history: one row per (tag -> digest) span; last_seen NULL = current.
CREATE TABLE IF NOT EXISTS tags (
    id         INTEGER PRIMARY KEY,
    package_id INTEGER NOT NULL REFERENCES packages (id),
    tag        TEXT NOT NULL,
    digest     TEXT NOT NULL,
    first_seen TEXT NOT NULL,
    last_seen  TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS tags_current ON tags (package_id, tag) WHERE last_seen IS NULL;
CREATE INDEX IF NOT EXISTS tags_digest ON tags (digest);

-- Signatures, attestations, SBOMs and other artifacts, linked to the digest
-- they describe. via: cosign-tag | buildx | subject | referrers-api
CREATE TABLE IF NOT EXISTS referrers (
    subject_digest  TEXT NOT NULL,
    referrer_digest TEXT NOT NULL,
    kind            TEXT NOT NULL,          -- signature | attestation | sbom | other
    artifact_type   TEXT,
    via             TEXT NOT NULL,
    PRIMARY KEY (subject_digest, referrer_digest)
);
CREATE INDEX IF NOT EXISTS referrers_referrer ON referrers (referrer_digest);

-- Source repositories learnt from GitHub's GraphQL API (enrichment).
CREATE TABLE IF NOT EXISTS repositories (
    name_with_owner TEXT PRIMARY KEY,       -- OWNER/NAME as GitHub spells it
    node_id         TEXT,
    archived        INTEGER,                -- 0/1
    visibility      TEXT,                   -- public | private | internal
    pushed_at       TEXT,
    default_branch  TEXT,
    head_oid        TEXT,
    fetched_at      TEXT NOT NULL
);

-- Conditional-request cache: ETag and the compact parsed payload per URL.
CREATE TABLE IF NOT EXISTS http_cache (
    url        TEXT PRIMARY KEY,
    etag       TEXT NOT NULL,
    payload    BLOB NOT NULL,
    updated_at TEXT NOT NULL
);

-- What a registry told us about itself: token realm/service (so later runs
-- skip the 401 challenge) and whether it has the OCI referrers API.
CREATE TABLE IF NOT EXISTS registry_facts (
    registry   TEXT PRIMARY KEY,
    realm      TEXT,
    service    TEXT,
    referrers  INTEGER,                     -- 1 yes, 0 no, NULL unknown
    updated_at TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS sync_runs (
    id               INTEGER PRIMARY KEY,
    started_at       TEXT NOT NULL,
    finished_at      TEXT,
    mode             TEXT NOT NULL,         -- incremental | full
    status           TEXT NOT NULL,         -- running|ok|partial|failed|interrupted|rate_limited
    owners           TEXT,                  -- comma-separated owner names
    pid              INTEGER,
    host             TEXT,
    requests         INTEGER NOT NULL DEFAULT 0,
    not_modified     INTEGER NOT NULL DEFAULT 0,
    lower_bound      INTEGER,
    requests_by_kind TEXT,                  -- JSON object kind -> count
    faults           TEXT,                  -- JSON object fault -> count (429, 5xx, reset, ...)
    packages_seen    INTEGER NOT NULL DEFAULT 0,
    packages_changed INTEGER NOT NULL DEFAULT 0,
    packages_skipped INTEGER NOT NULL DEFAULT 0,
    packages_failed  INTEGER NOT NULL DEFAULT 0,
    packages_deleted INTEGER NOT NULL DEFAULT 0,
    manifests_new    INTEGER NOT NULL DEFAULT 0,
    rows_corrected   INTEGER NOT NULL DEFAULT 0,
    bytes            INTEGER NOT NULL DEFAULT 0,
    errors           INTEGER NOT NULL DEFAULT 0,
    exit_code        INTEGER,
    message          TEXT
);

CREATE TABLE IF NOT EXISTS run_errors (
    run_id  INTEGER NOT NULL REFERENCES sync_runs (id),
    owner   TEXT,
    package TEXT,
    kind    TEXT NOT NULL,                  -- error class, e.g. DigestMismatchError
    message TEXT NOT NULL,
    at      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS run_errors_run ON run_errors (run_id);

-- ---------------------------------------------------------------------------
-- Stable views (the documented query surface)
-- ---------------------------------------------------------------------------

CREATE VIEW v_packages AS
SELECT o.name          AS owner,
       p.name          AS package,
       p.visibility,
       p.repository,
       p.version_count,
       p.created_at,
       p.updated_at,
       p.first_seen,
       p.last_synced,
       p.deleted_at,
       o.registry      AS registry,
       p.html_url      AS html_url
FROM packages p
JOIN owners o ON o.id = p.owner_id;

CREATE VIEW v_tags AS
SELECT o.name        AS owner,
       p.name        AS package,
       t.tag,
       t.digest,
       m.media_type,
       t.first_seen,
       m.kind        AS kind
FROM tags t
JOIN packages p ON p.id = t.package_id
JOIN owners o ON o.id = p.owner_id
LEFT JOIN manifests m ON m.digest = t.digest
WHERE t.last_seen IS NULL AND p.deleted_at IS NULL;

CREATE VIEW v_tag_history AS
SELECT o.name AS owner,
       p.name AS package,
       t.tag,
       t.digest,
       t.first_seen,
       t.last_seen
FROM tags t
JOIN packages p ON p.id = t.package_id
JOIN owners o ON o.id = p.owner_id;

CREATE VIEW v_images AS
WITH present AS (
    SELECT pd.package_id, pd.digest,
           (SELECT MIN(mc.parent_digest)
              FROM manifest_children mc
              JOIN package_digests pp
                ON pp.package_id = pd.package_id AND pp.digest = mc.parent_digest
               AND pp.last_seen IS NULL
             WHERE mc.child_digest = pd.digest) AS parent_digest
      FROM package_digests pd
     WHERE pd.last_seen IS NULL
)
SELECT o.name AS owner,
       p.name AS package,
       cur.digest,
       m.media_type,
       m.kind,
       COALESCE(
         (SELECT MIN(mc.platform) FROM manifest_children mc
           WHERE mc.parent_digest = cur.parent_digest AND mc.child_digest = cur.digest),
         CASE WHEN m.os IS NOT NULL AND m.architecture IS NOT NULL
              THEN m.os || '/' || m.architecture || COALESCE('/' || m.variant, '') END
       ) AS platform,
       cur.parent_digest,
       m.config_digest,
       COALESCE(m.created, par.created)         AS created,
       COALESCE(m.source, par.source,
         (SELECT c.source FROM manifest_children mc JOIN manifests c ON c.digest = mc.child_digest
           WHERE mc.parent_digest = m.digest AND c.source IS NOT NULL
           ORDER BY mc.position LIMIT 1))        AS source,
       COALESCE(m.revision, par.revision,
         (SELECT c.revision FROM manifest_children mc JOIN manifests c ON c.digest = mc.child_digest
           WHERE mc.parent_digest = m.digest AND c.revision IS NOT NULL
           ORDER BY mc.position LIMIT 1))        AS revision,
       COALESCE(m.description, par.description,
         (SELECT c.description FROM manifest_children mc JOIN manifests c ON c.digest = mc.child_digest
           WHERE mc.parent_digest = m.digest AND c.description IS NOT NULL
           ORDER BY mc.position LIMIT 1))        AS description,
       COALESCE(m.licenses, par.licenses,
         (SELECT c.licenses FROM manifest_children mc JOIN manifests c ON c.digest = mc.child_digest
           WHERE mc.parent_digest = m.digest AND c.licenses IS NOT NULL
           ORDER BY mc.position LIMIT 1))        AS licenses,
       CASE WHEN m.kind = 'index'
            THEN (SELECT SUM(c.content_size) FROM manifest_children mc
                    JOIN manifests c ON c.digest = mc.child_digest
                   WHERE mc.parent_digest = m.digest)
            ELSE m.content_size END             AS size,
       m.layer_count,
       (SELECT group_concat(t.tag, ',') FROM
          (SELECT t2.tag FROM tags t2
            WHERE t2.package_id = cur.package_id AND t2.digest = cur.digest
              AND t2.last_seen IS NULL
            ORDER BY t2.tag) t)                  AS tags,
       m.artifact_type                          AS artifact_type,
       m.subject_digest                         AS subject_digest
FROM present cur
JOIN packages p ON p.id = cur.package_id AND p.deleted_at IS NULL
JOIN owners o ON o.id = p.owner_id
LEFT JOIN manifests m ON m.digest = cur.digest
LEFT JOIN manifests par ON par.digest = cur.parent_digest;

CREATE VIEW v_labels AS
SELECT m.digest, l.key, l.value
  FROM manifests m
  JOIN config_labels l ON l.config_digest = m.config_digest
UNION
SELECT a.digest, a.key, a.value
  FROM annotations a;

CREATE VIEW v_referrers AS
SELECT r.subject_digest,
       r.referrer_digest,
       r.kind,
       COALESCE(r.artifact_type, m.artifact_type) AS artifact_type,
       r.via AS via
FROM referrers r
LEFT JOIN manifests m ON m.digest = r.referrer_digest;

CREATE VIEW v_sync_runs AS
SELECT id,
       started_at,
       finished_at,
       mode,
       status,
       requests,
       not_modified,
       packages_changed,
       errors,
       lower_bound,
       requests_by_kind,
       faults,
       packages_seen,
       packages_skipped,
       packages_failed,
       packages_deleted,
       manifests_new,
       rows_corrected,
       bytes,
       exit_code,
       owners,
       message
FROM sync_runs;
