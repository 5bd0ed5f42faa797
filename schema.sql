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
    full_listed_at TEXT,                    -- the last whole versions listing (crawler/engine/versions.py)
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
    config_size    INTEGER,
    layer_count    INTEGER,
    subject_digest TEXT,
    predicate_type TEXT,                    -- in-toto predicate type(s) of attestation layers
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

-- Annotations on the descriptors a manifest holds (OCI image-spec
-- descriptor.md allows them on every descriptor): index entries
-- (`buildah manifest annotate`), layers, the config, the subject. The
-- manifest's own annotations are in `annotations`. position is the entry's
-- index in the manifest's `manifests` or `layers` (0 for config and subject).
CREATE TABLE IF NOT EXISTS descriptor_annotations (
    manifest_digest TEXT NOT NULL,
    role            TEXT NOT NULL,          -- child | layer | config | subject
    position        INTEGER NOT NULL,
    key             TEXT NOT NULL,
    value           TEXT NOT NULL,
    PRIMARY KEY (manifest_digest, role, position, key)
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

-- Source repositories learnt from GitHub's GraphQL API (enrichment). A
-- repository GitHub had no facts for (not found, not visible to the token)
-- keeps the facts it had, or NULLs; fetched_at says when it was last asked.
CREATE TABLE IF NOT EXISTS repositories (
    name_with_owner TEXT PRIMARY KEY,       -- OWNER/NAME as packages.repository links it
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

-- Listings that did not end complete, as the last attempt left them: a row
-- while the last sync of a package failed (its stored rows may be older than
-- what the registry holds) or, with package = '', while the owner's last
-- packages listing failed or skipped entries. The package's next commit (or
-- the owner's next complete listing) deletes the row. plan-cleanup proposes
-- nothing in such a package (nothing is concluded from an incomplete listing).
CREATE TABLE IF NOT EXISTS incomplete_listings (
    owner_id INTEGER NOT NULL REFERENCES owners (id),
    package  TEXT NOT NULL,                 -- '' = the owner's packages listing
    run_id   INTEGER NOT NULL,
    kind     TEXT NOT NULL,                 -- error class, as in run_errors
    message  TEXT NOT NULL,
    at       TEXT NOT NULL,
    PRIMARY KEY (owner_id, package)
);

-- GitHub's attestations API (POST /orgs|users/{owner}/attestations/bulk-list),
-- asked per owner and subject digest. coverage: listed (GitHub answered with
-- attestations), none (GitHub answered, complete, with none), unknown (the
-- token cannot read attestations, or the answer was cut short): unknown is
-- never taken for none, and is asked again next run.
CREATE TABLE IF NOT EXISTS attestation_checks (
    owner_id   INTEGER NOT NULL REFERENCES owners (id),
    digest     TEXT NOT NULL,
    coverage   TEXT NOT NULL,               -- listed | none | unknown
    checked_at TEXT NOT NULL,
    reason     TEXT,                        -- why unknown
    PRIMARY KEY (owner_id, digest)
);

-- One row per Sigstore bundle GitHub listed for a subject digest. Signer
-- facts come from the bundle's certificate (SAN = the signing workflow;
-- Fulcio extensions 1.3.6.1.4.1.57264.1.12/.14/.13 = source repository, ref,
-- commit), the predicate type from the DSSE envelope's in-toto statement.
-- verified = 1 only when the signature, certificate chain and signing time
-- were checked against the trusted root the config names
-- ([attestations] trusted_root); verify_error says why not, NULL when no
-- trusted root was given.
CREATE TABLE IF NOT EXISTS attestations (
    owner_id          INTEGER NOT NULL REFERENCES owners (id),
    digest            TEXT NOT NULL,        -- the subject digest asked about
    bundle_digest     TEXT NOT NULL,        -- sha256 of the bundle (canonical JSON)
    media_type        TEXT,                 -- the bundle's mediaType
    predicate_type    TEXT,
    repository_id     INTEGER,              -- GitHub's id of the attesting repository
    bundle_url        TEXT,
    signer_workflow   TEXT,
    signer_repository TEXT,
    signer_ref        TEXT,
    signer_commit     TEXT,
    signer_issuer     TEXT,
    signed_at         TEXT,                 -- the transparency log's integrated time
    verified          INTEGER NOT NULL DEFAULT 0,
    verify_error      TEXT,
    bundle            BLOB,                 -- the bundle as listed (JSON)
    fetched_at        TEXT NOT NULL,
    PRIMARY KEY (owner_id, digest, bundle_digest)
);
CREATE INDEX IF NOT EXISTS attestations_digest ON attestations (digest);

-- Webhook deliveries `serve` accepted (crawler/serve/), each written before
-- it is answered 202, so a crash between receipt and sync loses nothing: the
-- next start syncs what is still pending. A redelivery keeps its delivery id
-- and is recognised here. Deliveries that need no sync (ping, other events,
-- other ecosystems) are only counted (GET /metrics).
CREATE TABLE IF NOT EXISTS events (
    delivery_id TEXT PRIMARY KEY,           -- X-GitHub-Delivery
    received_at TEXT NOT NULL,
    event       TEXT NOT NULL,              -- package | registry_package
    action      TEXT NOT NULL,              -- published | updated
    owner       TEXT NOT NULL,              -- the owner as configured in [[owners]]
    package     TEXT NOT NULL,
    state       TEXT NOT NULL,              -- pending | done | failed
    run_id      INTEGER,                    -- the sync run that handled it
    finished_at TEXT,
    message     TEXT                        -- why it failed (the run's message)
);
CREATE INDEX IF NOT EXISTS events_state ON events (state);
CREATE INDEX IF NOT EXISTS events_package ON events (owner, package);

-- Which run found each package change and how that run was started (via:
-- webhook = a targeted sync `serve` ran for an event; reconcile = `serve`'s
-- period; sync = the CLI, a timer or cron): the coverage report (v_coverage).
CREATE TABLE IF NOT EXISTS package_changes (
    run_id  INTEGER NOT NULL REFERENCES sync_runs (id),
    owner   TEXT NOT NULL,
    package TEXT NOT NULL,
    via     TEXT NOT NULL,                  -- webhook | reconcile | sync
    at      TEXT NOT NULL,
    PRIMARY KEY (run_id, owner, package)
);
CREATE INDEX IF NOT EXISTS package_changes_package ON package_changes (owner, package);

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
),
-- An index describes itself through its first image (labels live in image
-- configs): used where the index has no annotation of its own.
first_image AS (
    SELECT mc.parent_digest, mc.child_digest
      FROM manifest_children mc
     WHERE mc.position = (SELECT MIN(m2.position) FROM manifest_children m2
                            JOIN manifests c ON c.digest = m2.child_digest
                           WHERE m2.parent_digest = mc.parent_digest AND c.kind = 'image')
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
       COALESCE(m.created, par.created, fc.created)             AS created,
       COALESCE(m.source, par.source, fc.source)                AS source,
       COALESCE(m.revision, par.revision, fc.revision)          AS revision,
       COALESCE(m.description, par.description, fc.description) AS description,
       COALESCE(m.licenses, par.licenses, fc.licenses)          AS licenses,
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
       m.subject_digest                         AS subject_digest,
       -- children an index lists that the registry does not have (404): a
       -- broken multi-arch image; NULL for anything but an index
       CASE WHEN m.kind = 'index'
            THEN (SELECT COUNT(*) FROM manifest_children mc
                    LEFT JOIN manifests c ON c.digest = mc.child_digest
                   WHERE mc.parent_digest = m.digest AND c.digest IS NULL)
       END                                      AS missing_children
FROM present cur
JOIN packages p ON p.id = cur.package_id AND p.deleted_at IS NULL
JOIN owners o ON o.id = p.owner_id
LEFT JOIN manifests m ON m.digest = cur.digest
LEFT JOIN manifests par ON par.digest = cur.parent_digest
LEFT JOIN first_image fi ON fi.parent_digest = cur.digest
LEFT JOIN manifests fc ON fc.digest = fi.child_digest;

CREATE VIEW v_labels AS
SELECT m.digest, l.key, l.value
  FROM manifests m
  JOIN config_labels l ON l.config_digest = m.config_digest
UNION
SELECT a.digest, a.key, a.value
  FROM annotations a;

-- One row per annotation on a descriptor a manifest holds, with the digest
-- the descriptor points to and, for an index entry, its platform (the
-- manifest's own annotations are in v_labels).
CREATE VIEW v_descriptor_annotations AS
SELECT a.manifest_digest,
       a.role,
       a.position,
       CASE a.role WHEN 'child' THEN mc.child_digest
                   WHEN 'layer' THEN l.digest
                   WHEN 'config' THEN m.config_digest
                   WHEN 'subject' THEN m.subject_digest END AS descriptor_digest,
       CASE WHEN a.role = 'child' THEN mc.platform END     AS platform,
       a.key,
       a.value
FROM descriptor_annotations a
LEFT JOIN manifest_children mc
       ON a.role = 'child' AND mc.parent_digest = a.manifest_digest AND mc.position = a.position
LEFT JOIN layers l
       ON a.role = 'layer' AND l.manifest_digest = a.manifest_digest AND l.position = a.position
LEFT JOIN manifests m ON m.digest = a.manifest_digest;

CREATE VIEW v_referrers AS
SELECT r.subject_digest,
       r.referrer_digest,
       r.kind,
       COALESCE(r.artifact_type, m.artifact_type, m.predicate_type) AS artifact_type,
       r.via AS via
FROM referrers r
LEFT JOIN manifests m ON m.digest = r.referrer_digest;

-- One row per current tag of a package linked to a source repository, with
-- what GitHub's GraphQL API said about that repository (NULL until the
-- enrichment asked) and whether the tagged image was built from the
-- default-branch head. image_revision is the image's
-- org.opencontainers.image.revision (an index: its first child that has
-- one); at_head is 1 when it equals head_oid (case-insensitive; an
-- abbreviated revision of 7+ characters matches as a prefix), 0 when it
-- differs, NULL when either is unknown. visibility is the repository's;
-- package_visibility the package's. cosign signature/attestation/SBOM tags
-- are left out: they describe an image, they are not built from a source.
CREATE VIEW v_sources AS
WITH tagged AS (
    SELECT o.name AS owner,
           p.name AS package,
           p.repository,
           p.visibility AS package_visibility,
           t.tag,
           t.digest,
           COALESCE(m.revision,
             (SELECT c.revision FROM manifest_children mc JOIN manifests c ON c.digest = mc.child_digest
               WHERE mc.parent_digest = t.digest AND c.revision IS NOT NULL
               ORDER BY mc.position LIMIT 1)) AS image_revision
      FROM tags t
      JOIN packages p ON p.id = t.package_id AND p.deleted_at IS NULL
      JOIN owners o ON o.id = p.owner_id
      LEFT JOIN manifests m ON m.digest = t.digest
     WHERE t.last_seen IS NULL
       AND p.repository IS NOT NULL
       AND (m.kind IS NULL OR m.kind NOT IN ('signature', 'attestation', 'sbom'))
)
SELECT x.owner,
       x.package,
       x.repository,
       r.archived,
       r.visibility,
       r.default_branch,
       r.head_oid,
       x.image_revision,
       CASE WHEN r.head_oid IS NULL OR x.image_revision IS NULL THEN NULL
            WHEN LENGTH(x.image_revision) >= 7
             AND SUBSTR(LOWER(r.head_oid), 1, LENGTH(x.image_revision)) = LOWER(x.image_revision)
            THEN 1
            ELSE 0 END          AS at_head,
       x.tag                    AS tag,
       x.digest                 AS digest,
       x.package_visibility     AS package_visibility,
       r.pushed_at              AS pushed_at,
       r.fetched_at             AS checked_at
FROM tagged x
LEFT JOIN repositories r ON r.name_with_owner = x.repository;

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

-- ---------------------------------------------------------------------------
-- Reports: the views behind `ghcr-inventory report NAME` (crawler/reports.py)
-- and the Datasette canned queries (scripts/datasette-metadata.yaml). Each
-- report is one query over its view (the query itself is in reports.py);
-- the views are documented here, one by one. Words used below:
--   tagged image   a digest a current tag points to whose manifest is an image
--                  or an index. Cosign .sig/.att/.sbom tags and OCI artifacts
--                  are tagged too, but they are not images: they are never
--                  "unsigned" or "missing a source".
--   kept           what the current tags of a package keep alive: the tagged
--                  digests, the children of kept indexes (platform images,
--                  buildx attestation manifests) and the referrers of kept
--                  digests (signatures, attestations, SBOMs, artifacts with a
--                  subject), transitively.
--   blob           a config or layer an image manifest references. A foreign
--                  (non-distributable) layer is not stored by the registry.
-- Sizes are compressed bytes as the descriptors declare them.
-- ---------------------------------------------------------------------------

-- v_blobs(manifest_digest, blob_digest, role, size, stored): the config and
-- layers of every image manifest; role = config | layer; stored = 0 for a
-- foreign layer (it lives on another host).
CREATE VIEW v_blobs AS
SELECT m.digest        AS manifest_digest,
       m.config_digest AS blob_digest,
       'config'        AS role,
       m.config_size   AS size,
       1               AS stored
FROM manifests m
WHERE m.config_digest IS NOT NULL
UNION ALL
SELECT l.manifest_digest,
       l.digest,
       'layer',
       l.size,
       CASE WHEN l.urls IS NULL THEN 1 ELSE 0 END
FROM layers l;

-- v_tagged_images(owner, package, digest, kind, media_type, tags, tag_count,
--   signed, attested, sbom, source, revision, repository, visibility):
-- one row per tagged image or index of a live package.
--   signed    1 when a signature (a cosign .sig tag, or a referrer the engine
--             classified as a signature) describes this very digest. cosign
--             signs the digest a tag resolves to, which for a multi-arch
--             image is the index: signed platform images do not make their
--             index signed, and a signed index needs no signed children.
--   attested  1 when an attestation describes the digest or one of its
--             children (buildx attaches provenance to each platform image).
--   sbom      1 when an SBOM describes the digest or one of its children.
--   source, revision: org.opencontainers.image.source / .revision of the
--             digest or, for an index, of its first child that has them.
--   repository, visibility: the package's (GitHub's) source-repository link
--             and visibility.
--   github_attested  1 when GitHub's attestations API listed an attestation
--             of the digest or of one of its children (`attested` counts
--             registry referrers only); github_verified: one of them verified
--             against the trusted root.
--   github_coverage  what GitHub's attestations API answered for the digest
--             itself: listed | none | unknown (the token could not read
--             attestations: NOT none) | NULL (not asked yet).
CREATE VIEW v_tagged_images AS
WITH tagged AS (
    SELECT t.package_id, t.digest, COUNT(*) AS tag_count
      FROM tags t
     WHERE t.last_seen IS NULL
     GROUP BY t.package_id, t.digest
),
-- (digest, kind) for every referrer of a digest or of one of its children
described AS (
    SELECT r.subject_digest AS digest, r.kind FROM referrers r
    UNION
    SELECT mc.parent_digest, r.kind
      FROM referrers r JOIN manifest_children mc ON mc.child_digest = r.subject_digest
),
-- (owner, digest, verified) for every GitHub-API attestation of a digest or of one of its children
github AS (
    SELECT a.owner_id, a.digest, a.verified FROM attestations a
    UNION
    SELECT a.owner_id, mc.parent_digest, a.verified
      FROM attestations a JOIN manifest_children mc ON mc.child_digest = a.digest
)
SELECT o.name AS owner,
       p.name AS package,
       tg.digest,
       m.kind,
       m.media_type,
       (SELECT group_concat(x.tag, ',') FROM
          (SELECT t2.tag FROM tags t2
            WHERE t2.package_id = tg.package_id AND t2.digest = tg.digest
              AND t2.last_seen IS NULL
            ORDER BY t2.tag) x)                    AS tags,
       tg.tag_count,
       CASE WHEN EXISTS (SELECT 1 FROM referrers r
                          WHERE r.subject_digest = tg.digest AND r.kind = 'signature')
            THEN 1 ELSE 0 END                      AS signed,
       CASE WHEN EXISTS (SELECT 1 FROM described d WHERE d.digest = tg.digest AND d.kind = 'attestation')
            THEN 1 ELSE 0 END                      AS attested,
       CASE WHEN EXISTS (SELECT 1 FROM described d WHERE d.digest = tg.digest AND d.kind = 'sbom')
            THEN 1 ELSE 0 END                      AS sbom,
       COALESCE(m.source,
         (SELECT c.source FROM manifest_children mc JOIN manifests c ON c.digest = mc.child_digest
           WHERE mc.parent_digest = m.digest AND c.source IS NOT NULL
           ORDER BY mc.position LIMIT 1))          AS source,
       COALESCE(m.revision,
         (SELECT c.revision FROM manifest_children mc JOIN manifests c ON c.digest = mc.child_digest
           WHERE mc.parent_digest = m.digest AND c.revision IS NOT NULL
           ORDER BY mc.position LIMIT 1))          AS revision,
       p.repository,
       p.visibility,
       CASE WHEN EXISTS (SELECT 1 FROM github g WHERE g.owner_id = p.owner_id AND g.digest = tg.digest)
            THEN 1 ELSE 0 END                      AS github_attested,
       CASE WHEN EXISTS (SELECT 1 FROM github g WHERE g.owner_id = p.owner_id AND g.digest = tg.digest
                                                  AND g.verified = 1)
            THEN 1 ELSE 0 END                      AS github_verified,
       (SELECT c.coverage FROM attestation_checks c
         WHERE c.owner_id = p.owner_id AND c.digest = tg.digest) AS github_coverage
FROM tagged tg
JOIN packages p ON p.id = tg.package_id AND p.deleted_at IS NULL
JOIN owners o ON o.id = p.owner_id
JOIN manifests m ON m.digest = tg.digest
WHERE m.kind IN ('index', 'image');

-- v_unsigned (report `unsigned`): tagged images that no signature describes
-- (see v_tagged_images.signed for what counts). attested counts registry
-- referrers, github_attested GitHub's attestations API; attested_by names
-- which source vouches for the image's provenance (NULL: neither).
CREATE VIEW v_unsigned AS
SELECT owner, package, digest, kind, tag_count, tags, attested, sbom,
       github_attested,
       CASE WHEN attested = 1 AND github_attested = 1 THEN 'registry-referrer,github-api'
            WHEN attested = 1 THEN 'registry-referrer'
            WHEN github_attested = 1 THEN 'github-api' END AS attested_by
FROM v_tagged_images
WHERE signed = 0;

-- v_attestations(owner, package, digest, source, predicate_type,
--   signer_workflow, signer_repository, signer_ref, signer_commit, verified,
--   verification, media_type, evidence, repository_id, signed_at): one row
-- per attestation of a digest a live package holds, from either source:
--   registry-referrer  an attestation manifest in the registry (cosign .att
--                      tag, buildx attestation manifest, OCI subject); the
--                      signer columns are NULL, nothing is verified here;
--                      evidence = the attestation manifest's digest.
--   github-api         a Sigstore bundle GitHub's attestations API listed;
--                      signer_* come from its certificate (the SAN is the
--                      workflow that signed; Fulcio's extensions the source
--                      repository, ref and commit), predicate_type from its
--                      in-toto statement; evidence = the bundle's sha256.
-- verified = 1 only when checked against the configured trusted root;
-- verification says it in words ("listed by GitHub, not verified here"
-- without a trusted root, or why the check failed).
CREATE VIEW v_attestations AS
SELECT o.name                        AS owner,
       p.name                        AS package,
       pd.digest,
       'registry-referrer'           AS source,
       COALESCE(m.predicate_type, r.artifact_type, m.artifact_type) AS predicate_type,
       CAST(NULL AS TEXT)            AS signer_workflow,
       CAST(NULL AS TEXT)            AS signer_repository,
       CAST(NULL AS TEXT)            AS signer_ref,
       CAST(NULL AS TEXT)            AS signer_commit,
       0                             AS verified,
       'in the registry (' || r.via || '), not verified here' AS verification,
       m.media_type                  AS media_type,
       r.referrer_digest             AS evidence,
       CAST(NULL AS INTEGER)         AS repository_id,
       CAST(NULL AS TEXT)            AS signed_at
FROM package_digests pd
JOIN packages p ON p.id = pd.package_id AND p.deleted_at IS NULL
JOIN owners o ON o.id = p.owner_id
JOIN referrers r ON r.subject_digest = pd.digest AND r.kind = 'attestation'
LEFT JOIN manifests m ON m.digest = r.referrer_digest
WHERE pd.last_seen IS NULL
UNION ALL
SELECT o.name, p.name, pd.digest,
       'github-api',
       a.predicate_type,
       a.signer_workflow,
       a.signer_repository,
       a.signer_ref,
       a.signer_commit,
       a.verified,
       CASE WHEN a.verified = 1 THEN 'verified against the trusted root'
            WHEN a.verify_error IS NULL THEN 'listed by GitHub, not verified here'
            ELSE 'listed by GitHub, not verified: ' || a.verify_error END,
       a.media_type,
       a.bundle_digest,
       a.repository_id,
       a.signed_at
FROM attestations a
JOIN owners o ON o.id = a.owner_id
JOIN packages p ON p.owner_id = o.id AND p.deleted_at IS NULL
JOIN package_digests pd ON pd.package_id = p.id AND pd.digest = a.digest AND pd.last_seen IS NULL;

-- v_unattested (report `unattested`): tagged images no attestation of either
-- source describes (nor, for an index, any of its children).
-- github_coverage tells how sure that is for GitHub's store: none (GitHub
-- answered: no attestation), unknown (the token cannot read attestations, or
-- the answer was cut short: there may be some), not asked (not asked yet).
CREATE VIEW v_unattested AS
SELECT owner, package, digest, kind, tag_count, tags, signed,
       CASE WHEN github_coverage IS NULL THEN 'not asked'
            WHEN github_coverage = 'listed' THEN 'none'  -- listed for a child only: not this digest
            ELSE github_coverage END AS github_coverage,
       repository
FROM v_tagged_images
WHERE attested = 0 AND github_attested = 0;

-- v_missing_source (report `missing-source`): tagged images without an
-- org.opencontainers.image.source label or annotation (on the digest or, for
-- an index, on a child). `repository` shows GitHub's link where the package
-- has one (set by hand or from an earlier image).
CREATE VIEW v_missing_source AS
SELECT owner, package, digest, kind, tag_count, tags, repository
FROM v_tagged_images
WHERE source IS NULL OR source = '';

-- v_stale (report `stale`): tagged images whose revision is not the head
-- commit of their source repository's default branch: the rows of v_sources
-- (GraphQL stage) with at_head = 0, one per digest with its tags. Images
-- without a revision, or whose repository GitHub has not told us about
-- (at_head NULL), are not listed; `report stale` says when v_sources has no
-- repository facts at all.
-- signer_commit: the commit a GitHub-API attestation of the digest says it
-- was built from (Fulcio's source repository digest); signer_matches_revision
-- 1 when it equals the image's revision label, 0 when not (the label and the
-- provenance disagree), NULL without such an attestation.
CREATE VIEW v_stale AS
SELECT s.owner,
       s.package,
       s.digest,
       group_concat(s.tag, ',') AS tags,
       s.image_revision         AS revision,
       s.repository,
       s.default_branch,
       s.head_oid,
       s.archived,
       (SELECT MIN(a.signer_commit) FROM v_attestations a
         WHERE a.owner = s.owner AND a.package = s.package AND a.digest = s.digest
           AND a.source = 'github-api')   AS signer_commit,
       (SELECT MAX(CASE WHEN LOWER(a.signer_commit) = LOWER(s.image_revision) THEN 1 ELSE 0 END)
          FROM v_attestations a
         WHERE a.owner = s.owner AND a.package = s.package AND a.digest = s.digest
           AND a.source = 'github-api' AND a.signer_commit IS NOT NULL) AS signer_matches_revision
FROM (SELECT * FROM v_sources WHERE at_head = 0 ORDER BY owner, package, digest, tag) s
GROUP BY s.owner, s.package, s.digest, s.image_revision, s.repository, s.default_branch,
         s.head_oid, s.archived;

-- v_public_from_private (report `public-from-private`): live public packages
-- whose source repository (packages.repository, as v_sources links it) is
-- private or internal: a public image of code that is not public. Needs the
-- repositories the GraphQL stage fetches, like v_stale; a package counts
-- whether or not it has current tags.
CREATE VIEW v_public_from_private AS
SELECT o.name            AS owner,
       p.name            AS package,
       p.visibility,
       r.name_with_owner AS repository,
       r.visibility      AS repository_visibility,
       r.archived
FROM packages p
JOIN owners o ON o.id = p.owner_id
JOIN repositories r ON r.name_with_owner = p.repository
WHERE p.deleted_at IS NULL
  AND p.visibility = 'public'
  AND r.visibility IN ('private', 'internal');

-- v_untagged(owner, package, digest, kind, media_type, reason, created,
--   uploaded_at, size): every version a live package holds that no current
-- tag of that package points to, with why it is there:
--   child-of-tagged-index  a platform image or attestation manifest of a kept
--                          index (GitHub lists index children as versions);
--   referrer-of-tagged     describes a kept digest (signature, attestation,
--                          SBOM, artifact with a subject) and is not tagged;
--   orphan                 nothing kept reaches it: deleting it breaks no tag.
-- A child of an orphaned index is an orphan too. uploaded_at is GitHub's
-- version timestamp; size is config + layers (NULL for an index).
CREATE VIEW v_untagged AS
WITH RECURSIVE
edges (parent, child, reason) AS (
    SELECT parent_digest, child_digest, 'child-of-tagged-index' FROM manifest_children
    UNION ALL
    SELECT subject_digest, referrer_digest, 'referrer-of-tagged' FROM referrers
),
kept (package_id, digest, reason) AS (
    SELECT package_id, digest, 'tagged' FROM tags WHERE last_seen IS NULL
    UNION
    SELECT k.package_id, e.child, e.reason
      FROM kept k JOIN edges e ON e.parent = k.digest
),
ranked AS (
    SELECT package_id, digest,
           MIN(CASE reason WHEN 'tagged' THEN 0 WHEN 'child-of-tagged-index' THEN 1 ELSE 2 END) AS rank
      FROM kept
     GROUP BY package_id, digest
)
SELECT o.name AS owner,
       p.name AS package,
       pd.digest,
       m.kind,
       m.media_type,
       CASE k.rank WHEN 1 THEN 'child-of-tagged-index'
                   WHEN 2 THEN 'referrer-of-tagged'
                   ELSE 'orphan' END AS reason,
       m.created,
       pd.created_at AS uploaded_at,
       m.content_size AS size
FROM package_digests pd
JOIN packages p ON p.id = pd.package_id AND p.deleted_at IS NULL
JOIN owners o ON o.id = p.owner_id
LEFT JOIN manifests m ON m.digest = pd.digest
LEFT JOIN ranked k ON k.package_id = pd.package_id AND k.digest = pd.digest
WHERE pd.last_seen IS NULL
  AND (k.rank IS NULL OR k.rank > 0);

-- v_orphan_blobs(owner, package, digest, kind, media_type, created,
--   uploaded_at, size, blob_digest, role, blob_size, reclaimable): the blobs
-- of every orphan (one row with NULL blob columns for an orphan without any,
-- e.g. an index). reclaimable = 1 when the blob is stored by the registry and
-- no kept version of any live package (every held version that is not an
-- orphan) uses it: deleting the orphans frees it.
CREATE VIEW v_orphan_blobs AS
WITH orphan AS (
    SELECT owner, package, digest, kind, media_type, created, uploaded_at, size
      FROM v_untagged WHERE reason = 'orphan'
),
kept AS (
    SELECT pd.digest
      FROM package_digests pd
      JOIN packages p ON p.id = pd.package_id AND p.deleted_at IS NULL
      JOIN owners o ON o.id = p.owner_id
      LEFT JOIN orphan x ON x.owner = o.name AND x.package = p.name AND x.digest = pd.digest
     WHERE pd.last_seen IS NULL AND x.digest IS NULL
),
-- The blobs are read from layers/manifests directly rather than through
-- v_blobs: SQLite would materialise all of v_blobs to join it.
kept_blobs AS (
    SELECT l.digest AS blob_digest FROM kept k JOIN layers l ON l.manifest_digest = k.digest
    UNION
    SELECT m.config_digest FROM kept k JOIN manifests m ON m.digest = k.digest
     WHERE m.config_digest IS NOT NULL
),
blobs AS (
    SELECT x.owner, x.package, x.digest, l.digest AS blob_digest, 'layer' AS role, l.size AS blob_size,
           CASE WHEN l.urls IS NULL THEN 1 ELSE 0 END AS stored
      FROM orphan x JOIN layers l ON l.manifest_digest = x.digest
    UNION ALL
    SELECT x.owner, x.package, x.digest, m.config_digest, 'config',
           m.config_size,
           1
      FROM orphan x JOIN manifests m ON m.digest = x.digest
     WHERE m.config_digest IS NOT NULL
)
SELECT x.owner, x.package, x.digest, x.kind, x.media_type, x.created, x.uploaded_at, x.size,
       b.blob_digest,
       b.role,
       b.blob_size,
       CASE WHEN b.blob_digest IS NULL THEN NULL
            WHEN b.stored = 1 AND b.blob_digest NOT IN (SELECT blob_digest FROM kept_blobs) THEN 1
            ELSE 0 END AS reclaimable
FROM orphan x
LEFT JOIN blobs b ON b.owner = x.owner AND b.package = x.package AND b.digest = x.digest;

-- v_orphans (report `orphans`): untagged, unreferenced versions (v_untagged
-- reason = orphan) with reclaimable_bytes: the bytes of their blobs that no
-- kept version uses. A blob shared by two orphans (and nothing kept) counts
-- in both rows; v_summary.reclaimable_bytes counts it once.
CREATE VIEW v_orphans AS
SELECT owner, package, digest, kind, media_type, created, uploaded_at, size,
       COALESCE(SUM(CASE WHEN reclaimable = 1 THEN blob_size END), 0) AS reclaimable_bytes
FROM (SELECT DISTINCT owner, package, digest, kind, media_type, created, uploaded_at, size,
                      blob_digest, blob_size, reclaimable
        FROM v_orphan_blobs) ob
GROUP BY owner, package, digest, kind, media_type, created, uploaded_at, size;

-- v_platforms (report `platforms`): platform coverage per package: one row per
-- (package, platform) offered by its tagged images, with `images` = how many
-- tagged images offer it and `tagged_images` = how many the package has (a
-- platform with images < tagged_images is missing from some tags). A single
-- image offers its config's os/architecture[/variant]; an index offers its
-- children's platforms, not counting attestation manifests (unknown/unknown).
CREATE VIEW v_platforms AS
WITH timg AS (
    SELECT DISTINCT t.package_id, t.digest, m.kind, m.os, m.architecture, m.variant
      FROM tags t
      JOIN manifests m ON m.digest = t.digest
     WHERE t.last_seen IS NULL AND m.kind IN ('index', 'image')
),
offered AS (
    SELECT package_id, digest,
           os || '/' || architecture || COALESCE('/' || NULLIF(variant, ''), '') AS platform
      FROM timg
     WHERE kind = 'image' AND os IS NOT NULL AND architecture IS NOT NULL
    UNION
    SELECT ti.package_id, ti.digest, mc.platform
      FROM timg ti
      JOIN manifest_children mc ON mc.parent_digest = ti.digest
      LEFT JOIN manifests c ON c.digest = mc.child_digest
     WHERE ti.kind = 'index'
       AND mc.platform IS NOT NULL AND mc.platform <> 'unknown/unknown'
       AND mc.reference_type IS NULL
       AND (c.kind IS NULL OR c.kind = 'image')
),
counted AS (
    SELECT package_id, COUNT(*) AS tagged_images FROM timg GROUP BY package_id
)
SELECT o.name AS owner,
       p.name AS package,
       f.platform,
       COUNT(DISTINCT f.digest) AS images,
       n.tagged_images
FROM offered f
JOIN counted n ON n.package_id = f.package_id
JOIN packages p ON p.id = f.package_id AND p.deleted_at IS NULL
JOIN owners o ON o.id = p.owner_id
GROUP BY o.name, p.name, f.package_id, f.platform, n.tagged_images;

-- v_package_sizes (report `largest`): what each live package stores: bytes =
-- the sum of the distinct blobs (config + layers) of all the versions it
-- holds, tagged or not, so a layer shared by several images or tags of the
-- package counts once (each package counts its own copy). Foreign layers are
-- not stored by the registry and are left out.
CREATE VIEW v_package_sizes AS
WITH present AS (
    SELECT pd.package_id, pd.digest
      FROM package_digests pd
     WHERE pd.last_seen IS NULL
),
blobs AS (  -- v_blobs' two halves, read directly (see v_orphan_blobs)
    SELECT pr.package_id, l.digest AS blob_digest, l.size
      FROM present pr JOIN layers l ON l.manifest_digest = pr.digest
     WHERE l.urls IS NULL
    UNION
    SELECT pr.package_id, m.config_digest, m.config_size
      FROM present pr JOIN manifests m ON m.digest = pr.digest
     WHERE m.config_digest IS NOT NULL
),
sized AS (
    SELECT package_id, SUM(size) AS bytes, COUNT(*) AS blobs FROM blobs GROUP BY package_id
),
held AS (
    SELECT package_id, COUNT(*) AS versions FROM present GROUP BY package_id
),
tagged AS (
    SELECT package_id, COUNT(*) AS tags FROM tags WHERE last_seen IS NULL GROUP BY package_id
)
SELECT o.name AS owner,
       p.name AS package,
       COALESCE(s.bytes, 0)    AS bytes,
       COALESCE(s.blobs, 0)    AS blobs,
       COALESCE(h.versions, 0) AS versions,
       COALESCE(t.tags, 0)     AS tags
FROM packages p
JOIN owners o ON o.id = p.owner_id
LEFT JOIN sized s ON s.package_id = p.id
LEFT JOIN held h ON h.package_id = p.id
LEFT JOIN tagged t ON t.package_id = p.id
WHERE p.deleted_at IS NULL;

-- v_tag_moves (report `moved`): every time a tag started pointing at another
-- digest: from_digest is the span before (by tags.id, i.e. in the order the
-- syncs saw them), moved_at when the sync saw the new one. A tag deleted and
-- later re-created on another digest counts as moved; on the same digest not.
CREATE VIEW v_tag_moves AS
SELECT o.name       AS owner,
       p.name       AS package,
       n.tag,
       prev.digest  AS from_digest,
       n.digest     AS to_digest,
       n.first_seen AS moved_at,
       n.last_seen  AS moved_again_at
FROM tags n
JOIN tags prev ON prev.package_id = n.package_id AND prev.tag = n.tag
              AND prev.id = (SELECT MAX(x.id) FROM tags x
                              WHERE x.package_id = n.package_id AND x.tag = n.tag AND x.id < n.id)
JOIN packages p ON p.id = n.package_id
JOIN owners o ON o.id = p.owner_id
WHERE prev.digest <> n.digest;

-- v_incomplete_listings(owner, package, run_id, kind, message, at): the
-- packages (package '' = the owner's packages listing) whose last listing
-- did not end complete (table incomplete_listings): what is stored for them
-- may be older than the registry; plan-cleanup refuses them.
CREATE VIEW v_incomplete_listings AS
SELECT o.name AS owner, i.package, i.run_id, i.kind, i.message, i.at
FROM incomplete_listings i
JOIN owners o ON o.id = i.owner_id;

-- v_broken_indexes(owner, package, digest, tags, position, child_digest,
-- platform, reference_type): one row per child an index of a live package
-- lists but the registry does not have (it answered 404 when the index was
-- synced). A pull of that platform fails; re-push the image or delete it.
-- reference_type is set for a buildx attestation manifest (its image still
-- pulls; only its provenance is gone).
CREATE VIEW v_broken_indexes AS
SELECT o.name AS owner,
       p.name AS package,
       pd.digest,
       (SELECT group_concat(t.tag, ',') FROM
          (SELECT t2.tag FROM tags t2
            WHERE t2.package_id = p.id AND t2.digest = pd.digest AND t2.last_seen IS NULL
            ORDER BY t2.tag) t) AS tags,
       mc.position,
       mc.child_digest,
       mc.platform,
       mc.reference_type
  FROM package_digests pd
  JOIN packages p ON p.id = pd.package_id AND p.deleted_at IS NULL
  JOIN owners o ON o.id = p.owner_id
  JOIN manifests m ON m.digest = pd.digest AND m.kind = 'index'
  JOIN manifest_children mc ON mc.parent_digest = m.digest
  LEFT JOIN manifests c ON c.digest = mc.child_digest
 WHERE pd.last_seen IS NULL AND c.digest IS NULL;

-- v_summary (report `summary`): one row: owners, live packages, current tags,
-- images (every version held: v_images rows), tagged images, how many are
-- signed / attested (registry referrers) / attested through GitHub's
-- attestations API (and verified) / attested by neither (unattested_images;
-- attestation_unknown_images of them GitHub could not answer for or was not
-- asked about) / have an SBOM (and signed_pct, NULL without tagged
-- images), orphans and reclaimable_bytes (distinct blobs, see
-- v_orphan_blobs), and the last sync run (its start, finish and status).
CREATE VIEW v_summary AS
WITH ti AS (
    SELECT COUNT(*) AS n, SUM(signed) AS signed, SUM(attested) AS attested, SUM(sbom) AS sbom,
           SUM(github_attested) AS github_attested, SUM(github_verified) AS github_verified,
           SUM(CASE WHEN attested = 0 AND github_attested = 0 THEN 1 ELSE 0 END) AS unattested,
           SUM(CASE WHEN attested = 0 AND github_attested = 0
                     AND (github_coverage IS NULL OR github_coverage = 'unknown') THEN 1 ELSE 0 END)
             AS attestation_unknown
      FROM v_tagged_images
),
orphan_rows AS (
    SELECT owner, package, digest, blob_digest, blob_size, reclaimable FROM v_orphan_blobs
),
ob AS (
    SELECT COUNT(DISTINCT owner || ' ' || package || ' ' || digest) AS orphans,
           (SELECT COALESCE(SUM(blob_size), 0) FROM
              (SELECT DISTINCT blob_digest, blob_size FROM orphan_rows WHERE reclaimable = 1) rb) AS bytes
      FROM orphan_rows
),
last_run AS (
    SELECT started_at, finished_at, status FROM sync_runs ORDER BY id DESC LIMIT 1
)
SELECT (SELECT COUNT(*) FROM owners)                                        AS owners,
       (SELECT COUNT(*) FROM packages WHERE deleted_at IS NULL)             AS packages,
       (SELECT COUNT(*) FROM v_tags)                                        AS tags,
       (SELECT COUNT(*) FROM package_digests pd
          JOIN packages p ON p.id = pd.package_id AND p.deleted_at IS NULL
         WHERE pd.last_seen IS NULL)                                        AS images,
       ti.n                                                                 AS tagged_images,
       COALESCE(ti.signed, 0)                                               AS signed_images,
       ROUND(100.0 * ti.signed / NULLIF(ti.n, 0), 1)                        AS signed_pct,
       COALESCE(ti.attested, 0)                                             AS attested_images,
       COALESCE(ti.github_attested, 0)                                      AS github_attested_images,
       COALESCE(ti.github_verified, 0)                                      AS github_verified_images,
       COALESCE(ti.unattested, 0)                                           AS unattested_images,
       COALESCE(ti.attestation_unknown, 0)                                  AS attestation_unknown_images,
       COALESCE(ti.sbom, 0)                                                 AS sbom_images,
       ob.orphans,
       ob.bytes                                                             AS reclaimable_bytes,
       (SELECT started_at FROM last_run)                                    AS last_sync_started,
       (SELECT finished_at FROM last_run)                                   AS last_sync_finished,
       (SELECT status FROM last_run)                                        AS last_sync_status
FROM ti, ob;

-- v_coverage (report `webhook-coverage`): for each package that changed since
-- its owner's first webhook delivery, how its changes were found — by a
-- webhook-triggered sync or by reconciliation (serve's period, a timer, a
-- manual sync) — and how many deliveries named it. reconcile_only = 1: it
-- changed, yet GitHub never sent an event for it (typically a package
-- without a source repository, see report missing-source): only
-- reconciliation keeps it current. Changes before the owner's first delivery
-- say nothing about webhooks and are left out.
CREATE VIEW v_coverage AS
SELECT c.owner,
       c.package,
       p.repository,
       SUM(CASE WHEN c.via = 'webhook' THEN 1 ELSE 0 END)              AS webhook_changes,
       SUM(CASE WHEN c.via = 'webhook' THEN 0 ELSE 1 END)              AS reconcile_changes,
       (SELECT COUNT(*) FROM events e
         WHERE e.owner = c.owner AND e.package = c.package)           AS deliveries,
       MAX(c.at)                                                       AS last_change,
       CASE WHEN SUM(CASE WHEN c.via = 'webhook' THEN 1 ELSE 0 END) = 0
             AND NOT EXISTS (SELECT 1 FROM events e
                              WHERE e.owner = c.owner AND e.package = c.package)
            THEN 1 ELSE 0 END                                          AS reconcile_only
FROM package_changes c
JOIN (SELECT owner, MIN(received_at) AS since FROM events GROUP BY owner) f ON f.owner = c.owner
LEFT JOIN owners o ON o.name = c.owner
LEFT JOIN packages p ON p.owner_id = o.id AND p.name = c.package
WHERE c.at >= f.since
GROUP BY c.owner, c.package, p.repository;
