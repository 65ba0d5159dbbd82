//! The schema and its migrations, versioned with `PRAGMA user_version`.
//!
//! Migrations only ever append: version N is `MIGRATIONS[N - 1]`, applied in one transaction with
//! the version bump, so a crash mid-migration leaves the previous version intact. Never edit a
//! shipped migration; add the next one.

use rusqlite::Connection;

/// Each step's SQL, in order.
const MIGRATIONS: &[&str] = &[V1, V2, V3, V4, V5, V6];

/// The newest schema version this build knows.
pub(super) const VERSION: i64 = MIGRATIONS.len() as i64;

/// How migrating went.
pub(super) enum Migrated {
    /// The schema is at [`VERSION`].
    Ok,
    /// The file is newer than this build (the version found).
    TooNew(i64),
}

/// Brings the schema to [`VERSION`].
pub(super) fn migrate(conn: &mut Connection) -> rusqlite::Result<Migrated> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let found: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if found > VERSION {
        return Ok(Migrated::TooNew(found));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(usize::try_from(found).unwrap_or(0)) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
    }
    tx.commit()?;
    Ok(Migrated::Ok)
}

/// Version 1 as shipped, for the migration test.
#[cfg(test)]
pub(super) const V1_FOR_TESTS: &str = V1;

/// Version 1. Times are integer milliseconds since the epoch (UTC).
const V1: &str = "
-- Idempotency: one row per de-duplication key.
CREATE TABLE claims (
    key         TEXT PRIMARY KEY,
    owner       TEXT NOT NULL,     -- current holder, or the last one once released or done
    phase       TEXT NOT NULL CHECK (phase IN ('leased', 'released', 'done')),
    lease_until INTEGER,           -- phase = 'leased'
    progress    TEXT,              -- JSON TurnProgress: the last checkpoint
    outcome     TEXT,              -- JSON TurnOutcome, phase = 'done'
    done_at     INTEGER            -- phase = 'done'
) WITHOUT ROWID;
CREATE INDEX claims_done_at ON claims (done_at) WHERE phase = 'done';

-- The queue. seq is the enqueue order (AUTOINCREMENT: never reused, even after deletes).
CREATE TABLE jobs (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    key          TEXT NOT NULL UNIQUE,
    grp          TEXT NOT NULL,
    payload      TEXT NOT NULL,     -- JSON Job
    enqueued_at  INTEGER NOT NULL,
    available_at INTEGER NOT NULL,
    attempt      INTEGER NOT NULL DEFAULT 0,
    receipt      TEXT UNIQUE,       -- set while leased
    lease_until  INTEGER,           -- set while leased
    dead_at      INTEGER,           -- set once dead-lettered
    last_error   TEXT
);
CREATE INDEX jobs_grp_seq ON jobs (grp, seq);

-- Every key ever enqueued, until purged: de-duplication outlives the job.
CREATE TABLE queue_keys (
    key         TEXT PRIMARY KEY,
    enqueued_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX queue_keys_enqueued_at ON queue_keys (enqueued_at);

-- Human mode per chat and session; session 0 stands for 'no session' (real ids are positive).
-- A missing row means the bot serves the chat.
CREATE TABLE chat_modes (
    chat    INTEGER NOT NULL,
    session INTEGER NOT NULL,
    rule    TEXT NOT NULL,
    since   INTEGER NOT NULL,
    PRIMARY KEY (chat, session)
) WITHOUT ROWID;

CREATE TABLE history (
    id   INTEGER PRIMARY KEY AUTOINCREMENT,
    chat INTEGER NOT NULL,
    at   INTEGER NOT NULL,
    role TEXT NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX history_chat_at ON history (chat, at, id);
CREATE INDEX history_at ON history (at);

CREATE TABLE profiles (
    phone      TEXT PRIMARY KEY,
    updated_at INTEGER NOT NULL,
    body       TEXT NOT NULL        -- JSON Profile
) WITHOUT ROWID;
CREATE INDEX profiles_updated_at ON profiles (updated_at);

-- The turn log: the record as JSON, plus the columns the queries need.
CREATE TABLE turns (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER NOT NULL,
    outcome     TEXT NOT NULL,
    total_ms    INTEGER NOT NULL,
    overhead_ms INTEGER NOT NULL,
    body        TEXT NOT NULL
);
CREATE INDEX turns_finished ON turns (finished_at, id);
CREATE INDEX turns_started ON turns (started_at);
";

/// Version 2: de-duplication moves from the queue to the idempotency store (the receiver admits a
/// key as `queued`, so it lasts as long as the retention, whatever the queue does); a job counts
/// failures and interruptions apart and keeps why it was set aside; named values (`meta`).
const V2: &str = "
-- The phase list is a CHECK constraint, so the table is rebuilt to admit 'queued'.
CREATE TABLE claims_v2 (
    key         TEXT PRIMARY KEY,
    owner       TEXT NOT NULL,     -- current holder, or the last one once released or done ('' when queued)
    phase       TEXT NOT NULL CHECK (phase IN ('queued', 'leased', 'released', 'done')),
    lease_until INTEGER,           -- phase = 'leased'
    progress    TEXT,              -- JSON TurnProgress: the last checkpoint
    outcome     TEXT,              -- JSON TurnOutcome, phase = 'done'
    done_at     INTEGER,           -- phase = 'done'
    queued_at   INTEGER            -- phase = 'queued'
) WITHOUT ROWID;
INSERT INTO claims_v2 (key, owner, phase, lease_until, progress, outcome, done_at)
    SELECT key, owner, phase, lease_until, progress, outcome, done_at FROM claims;
INSERT INTO claims_v2 (key, owner, phase, queued_at)
    SELECT key, '', 'queued', enqueued_at FROM queue_keys WHERE key NOT IN (SELECT key FROM claims);
DROP TABLE claims;
ALTER TABLE claims_v2 RENAME TO claims;
CREATE INDEX claims_done_at ON claims (done_at) WHERE phase = 'done';
CREATE INDEX claims_queued_at ON claims (queued_at) WHERE phase = 'queued';
DROP TABLE queue_keys;

ALTER TABLE jobs ADD COLUMN failures INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN interruptions INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN dead_reason TEXT;
ALTER TABLE jobs ADD COLUMN received_at INTEGER;
UPDATE jobs SET received_at = enqueued_at, failures = MAX(attempt - 1, 0);
UPDATE jobs SET dead_reason = COALESCE(last_error, 'dead-lettered') WHERE dead_at IS NOT NULL;

-- Profiles are written with optimistic concurrency.
ALTER TABLE profiles ADD COLUMN version INTEGER NOT NULL DEFAULT 1;

CREATE TABLE meta (
    name    TEXT PRIMARY KEY,
    value   TEXT NOT NULL,
    version INTEGER NOT NULL
) WITHOUT ROWID;
";

/// Version 3: which phone each chat serves, so `privacy export|erase --phone` reaches the chat's
/// history and turn log (history is keyed by chat; the phone is only in the messages).
const V3: &str = "
CREATE TABLE phone_chats (
    phone   TEXT NOT NULL,
    chat    INTEGER NOT NULL,
    seen_at INTEGER NOT NULL,
    PRIMARY KEY (phone, chat)
) WITHOUT ROWID;
CREATE INDEX phone_chats_chat ON phone_chats (chat);
CREATE INDEX phone_chats_seen_at ON phone_chats (seen_at);
";

/// Version 4: the FAQ answer cache (per line and question key, with each line's knowledge-base
/// version) and the usage counters behind the rate limits and the daily bot-call cap. Neither
/// holds a customer's words: cache keys are hashes of questions the worker judged impersonal, and
/// a counter's subject is a phone (erased with the phone's data) or a chat.
const V4: &str = "
CREATE TABLE answer_cache (
    line       TEXT NOT NULL,
    key        TEXT NOT NULL,
    body       TEXT NOT NULL,      -- JSON CachedAnswer
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (line, key)
) WITHOUT ROWID;
CREATE INDEX answer_cache_expires_at ON answer_cache (expires_at);

CREATE TABLE answer_versions (
    line    TEXT PRIMARY KEY,
    version TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE usage_counters (
    subject    TEXT NOT NULL,      -- phone:<phone> or chat:<id>
    name       TEXT NOT NULL,      -- win#<index> or day#<yyyy-mm-dd>
    count      INTEGER NOT NULL,
    last_token TEXT NOT NULL,      -- the last turn counted: a retried turn counts once
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (subject, name)
) WITHOUT ROWID;
CREATE INDEX usage_counters_expires_at ON usage_counters (expires_at);
";

/// Version 5: the CRM timeline's outbox. A comment (`crm_comments`) gathers lines
/// (`crm_lines`), one per turn; the timeline loop writes what is due and deletes the lines it
/// wrote, so a line appended meanwhile waits for the next write.
const V5: &str = "
CREATE TABLE crm_comments (
    comment_key TEXT PRIMARY KEY,
    entity_type TEXT NOT NULL,
    entity_id   INTEGER NOT NULL,
    due_at      INTEGER NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT
) WITHOUT ROWID;
CREATE INDEX crm_comments_due ON crm_comments (due_at);
CREATE TABLE crm_lines (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    comment_key TEXT NOT NULL,
    turn_key    TEXT NOT NULL,
    text        TEXT NOT NULL,
    at          INTEGER NOT NULL,
    UNIQUE (comment_key, turn_key)
);
";

/// Version 6: a turn is recorded once. A turn resumed after a crash between its record and its
/// completion records it again; the turn's first key (`turn_key`) makes the second a no-op. Rows
/// written before have none (NULLs are distinct in a UNIQUE index).
const V6: &str = "
ALTER TABLE turns ADD COLUMN turn_key TEXT;
CREATE UNIQUE INDEX turns_turn_key ON turns (turn_key);
";
