//! olbridge-sqlite: [`SqliteStore`], every storage port of `olbridge-core` in one SQLite file, for
//! the local runner.
//!
//! # Modules
//! One file per port (`idempotency`, `queue`, `chat`, `profile`, `log`, `privacy`, `timeline`; `cost`
//! for the FAQ answer cache and the usage counters), `schema` (versioned
//! migrations) and `admin` (dead letters, retention). Every port passes core's contract suites
//! (`tests/contract.rs`).
//!
//! # Durability
//! The promise is: a `SIGKILL` at any moment loses nothing and duplicates nothing. SQLite in WAL
//! mode with `synchronous=NORMAL` keeps every committed transaction across a process crash (the WAL
//! is written before `COMMIT` returns; only an OS crash or power cut may lose the last commits),
//! and every multi-step change runs in one `BEGIN IMMEDIATE` transaction, so a crash leaves either
//! all of it or none of it.
//!
//! # One process per store
//! Leases assume that whoever holds the store decides which worker is alive. A second process on
//! the same files would see the first one's leases as foreign, and [`SqliteStore::recover`] would
//! steal them. So [`SqliteStore::open`] takes an exclusive lock on `olbridge.lock` in the data
//! directory for the store's lifetime and refuses to open a directory another process holds.
//! The admin CLI's reports use [`SqliteStore::open_for_admin`] instead, which reads (and makes
//! single small writes) beside the running bridge without touching leases.
//!
//! # Privacy on disk
//! The store holds phone numbers, conversations and profiles: its directory is created `0700` and
//! its files `0600` (SQLite gives its `-wal` and `-shm` files the database file's mode); an
//! existing database file with wider permissions is narrowed at open. A directory the operator
//! created with wider permissions is left alone, with a warning (it may be theirs, like a home
//! directory). See `files`.
//!
//! # Threads
//! rusqlite is blocking, so every call runs on Tokio's blocking pool
//! (`spawn_blocking`) over one connection behind a `Mutex`. One writer is all SQLite allows
//! anyway; with WAL and no fsync per commit that is thousands of small transactions per second,
//! well above what one portal can send.
//!
//! # Time
//! Timestamps are stored as integer milliseconds since the Unix epoch, UTC; finer precision is
//! dropped. JSON payloads (jobs, progress, profiles, log records) keep theirs.

#![warn(missing_docs)]

mod admin;
mod chat;
mod cost;
mod files;
mod idempotency;
mod log;
mod meta;
mod privacy;
mod profile;
mod queue;
mod schema;
#[cfg(test)]
mod tests;
mod timeline;

use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use olbridge_core::ports::StoreError;
use rusqlite::{Connection, Transaction, TransactionBehavior};

pub use admin::{Purged, Retention};
pub use privacy::Compacted;

/// The database file inside the data directory.
pub const DB_FILE: &str = "olbridge.sqlite3";
/// The lock file inside the data directory.
pub const LOCK_FILE: &str = "olbridge.lock";

/// How long a statement waits for a lock held by another connection (the admin CLI's read-only
/// queries, a backup tool) before failing with a retryable error.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a store could not be opened. Each names the data directory, because that is what the
/// operator has to look at.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The directory or a file in it could not be created or opened.
    #[error("cannot use data directory {}: {source}", dir.display())]
    Dir {
        /// The data directory.
        dir: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// Another process holds the directory.
    #[error("data directory {} is in use by another olbridge process (it holds {LOCK_FILE}); stop it or use another directory", dir.display())]
    Locked {
        /// The data directory.
        dir: PathBuf,
    },
    /// SQLite refused to open or set up the database.
    #[error("cannot open the database in {}: {source}", dir.display())]
    Sqlite {
        /// The data directory.
        dir: PathBuf,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// There is no store in the directory (`open_for_admin` never creates one).
    #[error("no olbridge store in {} (no {DB_FILE}); check OLBRIDGE_DATA_DIR", dir.display())]
    Missing {
        /// The data directory.
        dir: PathBuf,
    },
    /// The store has an older schema, which only the bridge itself (`open`) upgrades.
    #[error("the database in {} has schema version {found}, older than this olbridge's ({supported}); start the bridge once to upgrade it", dir.display())]
    Outdated {
        /// The data directory.
        dir: PathBuf,
        /// The version found in the file.
        found: i64,
        /// The version this build uses.
        supported: i64,
    },
    /// The database was written by a newer olbridge: running an older one on it could corrupt it.
    #[error("the database in {} has schema version {found}, newer than this olbridge supports ({supported}); upgrade olbridge", dir.display())]
    TooNew {
        /// The data directory.
        dir: PathBuf,
        /// The version found in the file.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
}

/// What [`SqliteStore::recover`] gave back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Queue jobs that were leased by the previous process and are deliverable again.
    pub jobs: u64,
    /// Idempotency leases that were live and are now expired (the next claim resumes them).
    pub claims: u64,
}

/// Every storage port over one SQLite database. Cheap to clone: clones share the connection.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    // Field order is drop order: the connection closes before the lock is released.
    conn: Mutex<Connection>,
    dir: PathBuf,
    /// Held for the store's lifetime by [`SqliteStore::open`]; `None` for an admin store.
    lock: Option<File>,
}

impl SqliteStore {
    /// Opens (creating if needed) the store in `dir` for the process that runs the bridge: takes
    /// the directory lock, opens `olbridge.sqlite3`, sets WAL mode, `synchronous=NORMAL` and a busy
    /// timeout, and migrates the schema. Blocking: call it at start-up, before serving.
    pub fn open(dir: &Path) -> Result<Self, OpenError> {
        let dir_err = |source| OpenError::Dir { dir: dir.to_owned(), source };
        files::create_private_dir(dir).map_err(dir_err)?;
        let lock = files::open_private(&dir.join(LOCK_FILE)).map_err(dir_err)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(OpenError::Locked { dir: dir.to_owned() });
            }
            Err(TryLockError::Error(e)) => return Err(dir_err(e)),
        }
        files::open_private(&dir.join(DB_FILE)).map_err(dir_err)?;
        let mut conn = connect(dir)?;
        match schema::migrate(&mut conn).map_err(|source| OpenError::Sqlite { dir: dir.to_owned(), source })? {
            schema::Migrated::Ok => {}
            schema::Migrated::TooNew(found) => {
                return Err(OpenError::TooNew { dir: dir.to_owned(), found, supported: schema::VERSION });
            }
        }
        Ok(Self::new(conn, dir, Some(lock)))
    }

    /// Opens an existing store beside a running bridge, for reports and single requests (`stats`,
    /// `forget`, the dead-letter list): WAL lets it read while the bridge writes, and its writes
    /// wait for the bridge's (busy timeout). It takes no lock and never migrates (a newer admin
    /// must not change the schema under an older running bridge), and it cannot [`recover`]:
    /// leases belong to the bridge. Blocking.
    ///
    /// [`recover`]: SqliteStore::recover
    pub fn open_for_admin(dir: &Path) -> Result<Self, OpenError> {
        if !dir.join(DB_FILE).is_file() {
            return Err(OpenError::Missing { dir: dir.to_owned() });
        }
        let conn = connect(dir)?;
        let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(|source| OpenError::Sqlite { dir: dir.to_owned(), source })?;
        match found.cmp(&schema::VERSION) {
            std::cmp::Ordering::Equal => Ok(Self::new(conn, dir, None)),
            std::cmp::Ordering::Greater => Err(OpenError::TooNew { dir: dir.to_owned(), found, supported: schema::VERSION }),
            std::cmp::Ordering::Less => Err(OpenError::Outdated { dir: dir.to_owned(), found, supported: schema::VERSION }),
        }
    }

    fn new(conn: Connection, dir: &Path, lock: Option<File>) -> Self {
        Self { inner: Arc::new(Inner { conn: Mutex::new(conn), dir: dir.to_owned(), lock }) }
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The schema version of the open database (`PRAGMA user_version`).
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        self.run(|c| Ok(c.pragma_query_value(None, "user_version", |r| r.get(0))?)).await
    }

    /// Start-up recovery, for the one process that owns the store: every leased job is made
    /// deliverable again and every live idempotency lease is expired at `now`. Their owner was the
    /// previous process, which is dead (the directory lock proves nobody else is running), so
    /// waiting for the leases to run out would only delay its customers. Each job the dead process
    /// held counts one interruption (never a failure: see `olbridge_core::usecase::job`).
    pub async fn recover(&self, now: DateTime<Utc>) -> Result<Recovered, StoreError> {
        if self.inner.lock.is_none() {
            return Err(StoreError::Backend("recover needs the store opened with SqliteStore::open, not open_for_admin".into()));
        }
        let now = ms(now);
        self.run(move |c| {
            let tx = immediate(c)?;
            // The dead process held these: an interruption, not a failure of the job.
            let jobs = tx.execute(
                "UPDATE jobs SET receipt = NULL, lease_until = NULL, available_at = MIN(available_at, ?1), interruptions = interruptions + 1
                 WHERE receipt IS NOT NULL",
                [now],
            )?;
            let claims = tx.execute("UPDATE claims SET lease_until = ?1 WHERE phase = 'leased' AND lease_until > ?1", [now])?;
            tx.commit()?;
            Ok(Recovered { jobs: jobs as u64, claims: claims as u64 })
        })
        .await
    }

    /// Runs `f` on the connection on the blocking pool.
    async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, Fail> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        let task = tokio::task::spawn_blocking(move || {
            // A panic while holding the lock leaves no transaction open (rusqlite rolls back on
            // drop), so the connection is still sound.
            let mut conn = inner.conn.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut conn)
        });
        match task.await {
            Ok(result) => result.map_err(StoreError::from),
            Err(e) => Err(StoreError::Backend(format!("storage task failed: {e}"))),
        }
    }
}

/// Opens the database file with the connection settings every store uses.
fn connect(dir: &Path) -> Result<Connection, OpenError> {
    let sqlite_err = |source| OpenError::Sqlite { dir: dir.to_owned(), source };
    let conn = Connection::open(dir.join(DB_FILE)).map_err(sqlite_err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sqlite_err)?;
    conn.pragma_update_and_check(None, "journal_mode", "WAL", |_| Ok(())).map_err(sqlite_err)?;
    conn.pragma_update(None, "synchronous", "NORMAL").map_err(sqlite_err)?;
    Ok(conn)
}

/// Starts a write transaction that takes the write lock at once, so its reads and writes are one
/// atomic step.
fn immediate(c: &mut Connection) -> rusqlite::Result<Transaction<'_>> {
    c.transaction_with_behavior(TransactionBehavior::Immediate)
}

/// A failure inside a blocking call, turned into the port's [`StoreError`] in one place.
#[derive(Debug)]
enum Fail {
    Sql(rusqlite::Error),
    Json(serde_json::Error),
    Corrupt(String),
    LeaseLost,
}

impl From<rusqlite::Error> for Fail {
    fn from(e: rusqlite::Error) -> Self {
        Self::Sql(e)
    }
}

impl From<serde_json::Error> for Fail {
    fn from(e: serde_json::Error) -> Self {
        Self::Json(e)
    }
}

impl From<Fail> for StoreError {
    fn from(f: Fail) -> Self {
        match f {
            Fail::Sql(e) => StoreError::Backend(format!("sqlite: {e}")),
            Fail::Json(e) => StoreError::Corrupt(format!("json: {e}")),
            Fail::Corrupt(what) => StoreError::Corrupt(what),
            Fail::LeaseLost => StoreError::LeaseLost,
        }
    }
}

/// A value as stored JSON. Serialising our own types cannot really fail; if it does, the value is
/// not storable, which is what `Corrupt` says.
fn to_json<T: serde::Serialize + ?Sized>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(format!("json: {e}")))
}

/// A time as stored.
fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// `now + d` as stored, saturating at the latest time chrono can represent.
fn ms_after(now: DateTime<Utc>, d: Duration) -> i64 {
    let d = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    ms(now).saturating_add(d).min(DateTime::<Utc>::MAX_UTC.timestamp_millis())
}

/// A stored time.
fn from_ms(v: i64) -> Result<DateTime<Utc>, Fail> {
    DateTime::from_timestamp_millis(v).ok_or_else(|| Fail::Corrupt(format!("timestamp out of range: {v}")))
}
