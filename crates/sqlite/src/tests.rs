//! What only the SQLite adapter promises: files, the directory lock, migrations, start-up
//! recovery, the admin helpers, and durability across a `SIGKILL`. The ports' behaviour is the
//! contract suites' (`tests/contract.rs`).

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use olbridge_core::contract::{job, key, t};
use olbridge_core::domain::ids::{ChatId, Phone};
use olbridge_core::domain::profile::Profile;
use olbridge_core::domain::turn::{TurnOutcome, TurnProgress};
use olbridge_core::ports::{
    Admission, ChatMode, ChatStore, Claim, DeadLetters, IdempotencyStore, JobSink, MetaStore, ProfileStore, Settle, StoreError, WorkQueue,
};

use super::*;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const LEASE: Duration = Duration::from_secs(3600);

#[tokio::test]
async fn open_creates_the_store_in_wal_mode() -> TestResult {
    let root = tempfile::tempdir()?;
    let dir = root.path().join("nested/data");
    let store = SqliteStore::open(&dir)?;
    assert!(dir.join(DB_FILE).is_file());
    assert!(dir.join(LOCK_FILE).is_file());
    assert_eq!(store.dir(), dir);
    assert_eq!(store.schema_version().await?, schema::VERSION);
    let (journal, sync): (String, i64) = store
        .run(|c| {
            let j = c.pragma_query_value(None, "journal_mode", |r| r.get(0))?;
            Ok((j, c.pragma_query_value(None, "synchronous", |r| r.get(0))?))
        })
        .await?;
    assert_eq!((journal.as_str(), sync), ("wal", 1), "WAL with synchronous=NORMAL");
    Ok(())
}

#[tokio::test]
async fn a_locked_directory_is_refused_with_its_name() -> TestResult {
    let root = tempfile::tempdir()?;
    let first = SqliteStore::open(root.path())?;
    let second = SqliteStore::open(root.path());
    assert!(matches!(&second, Err(OpenError::Locked { dir }) if dir == root.path()), "{second:?}");
    let message = second.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains(&root.path().display().to_string()), "{message}");
    // Admin reads are allowed beside the owner, and see its writes.
    first.put(&Profile::new(Phone::parse("+4917612345678")?, t(0))).await?;
    let admin = SqliteStore::open_for_admin(root.path())?;
    assert!(admin.get(&Phone::parse("+4917612345678")?).await?.is_some());
    assert!(matches!(admin.recover(t(1)).await, Err(StoreError::Backend(_))), "leases belong to the owner");
    drop(first);
    SqliteStore::open(root.path())?;
    Ok(())
}

#[test]
fn admin_open_never_creates_or_migrates() -> TestResult {
    let root = tempfile::tempdir()?;
    assert!(matches!(SqliteStore::open_for_admin(root.path()), Err(OpenError::Missing { .. })));
    assert!(!root.path().join(DB_FILE).exists());
    rusqlite::Connection::open(root.path().join(DB_FILE))?;
    assert!(matches!(SqliteStore::open_for_admin(root.path()), Err(OpenError::Outdated { found: 0, .. })));
    SqliteStore::open(root.path())?;
    SqliteStore::open_for_admin(root.path())?;
    Ok(())
}

#[test]
fn a_newer_schema_is_refused() -> TestResult {
    let root = tempfile::tempdir()?;
    drop(SqliteStore::open(root.path())?);
    rusqlite::Connection::open(root.path().join(DB_FILE))?.pragma_update(None, "user_version", 99)?;
    let opened = SqliteStore::open(root.path());
    assert!(matches!(opened, Err(OpenError::TooNew { found: 99, .. })), "{opened:?}");
    assert!(matches!(SqliteStore::open_for_admin(root.path()), Err(OpenError::TooNew { found: 99, .. })));
    Ok(())
}

#[tokio::test]
async fn everything_survives_a_reopen() -> TestResult {
    let root = tempfile::tempdir()?;
    let chat = ChatId::new(5)?;
    let progress = TurnProgress { sent: 1, ..TurnProgress::default() };
    {
        let s = SqliteStore::open(root.path())?;
        s.admit(&key("k1"), t(0)).await?;
        s.send(&job("g", "k1"), t(0)).await?;
        s.claim(&key("k1"), "w1", t(0), Duration::from_secs(30)).await?;
        s.checkpoint(&key("k1"), "w1", &progress, t(1), Duration::from_secs(30)).await?;
        s.set_human(chat, None, "phrase", t(2)).await?;
        s.put_value("portal.member_id", "abc", None).await?;
    }
    let s = SqliteStore::open(root.path())?;
    assert_eq!(s.admit(&key("k1"), t(3)).await?, Admission::Duplicate);
    assert_eq!(s.get_value("portal.member_id").await?.map(|v| v.value), Some("abc".into()));
    assert_eq!(s.claim(&key("k1"), "w2", t(31), LEASE).await?, Claim::Resumed(progress));
    assert_eq!(s.mode(chat, None).await?, ChatMode::Human { rule: "phrase".into(), since: t(2) });
    assert_eq!(s.receive(10, t(3), LEASE).await?.len(), 1);
    Ok(())
}

#[tokio::test]
async fn recover_hands_back_what_a_dead_process_held() -> TestResult {
    let root = tempfile::tempdir()?;
    let progress = TurnProgress { sent: 2, ..TurnProgress::default() };
    let old_receipts = {
        let s = SqliteStore::open(root.path())?;
        for (g, k) in [("a", "a1"), ("a", "a2"), ("b", "b1"), ("c", "c1")] {
            s.send(&job(g, k), t(0)).await?;
        }
        let mut held = s.receive(2, t(0), LEASE).await?;
        held.extend(s.receive_more(&olbridge_core::domain::event::GroupId::from_stored("a".into()), 5, t(0), LEASE).await?);
        s.claim(&key("a1"), "dead-worker", t(0), LEASE).await?;
        s.checkpoint(&key("a1"), "dead-worker", &progress, t(1), LEASE).await?;
        s.claim(&key("b1"), "dead-worker", t(0), LEASE).await?;
        s.claim(&key("done"), "dead-worker", t(0), LEASE).await?;
        s.complete(&key("done"), "dead-worker", &TurnOutcome::Silent, t(1)).await?;
        held.into_iter().map(|d| d.receipt).collect::<Vec<_>>()
        // The store is dropped without giving anything back, as a killed process would.
    };
    let s = SqliteStore::open(root.path())?;
    let depth = |d: olbridge_core::ports::QueueDepth| (d.ready, d.in_flight, d.dead);
    assert_eq!(depth(s.depth(t(10)).await?), (1, 3, 0));
    assert_eq!(s.recover(t(10)).await?, Recovered { jobs: 3, claims: 2 });
    assert_eq!(depth(s.depth(t(10)).await?), (4, 0, 0));

    let heads = s.receive(10, t(10), LEASE).await?;
    let got: Vec<(&str, u32, u32)> = heads.iter().map(|d| (d.job.key.as_str(), d.interruptions, d.failures)).collect();
    assert_eq!(got, [("a1", 1, 0), ("b1", 1, 0), ("c1", 0, 0)], "at once, not after the hour-long leases; interrupted, not failed");
    for receipt in &old_receipts {
        assert!(matches!(s.settle(receipt, &Settle::Ack, t(10)).await, Err(StoreError::LeaseLost)));
    }
    assert_eq!(s.claim(&key("a1"), "new-worker", t(10), LEASE).await?, Claim::Resumed(progress));
    assert_eq!(s.claim(&key("b1"), "new-worker", t(10), LEASE).await?, Claim::Resumed(TurnProgress::default()));
    assert_eq!(s.claim(&key("done"), "new-worker", t(10), LEASE).await?, Claim::Done(TurnOutcome::Silent));
    assert_eq!(s.recover(t(11)).await?, Recovered { jobs: 3, claims: 2 }, "it only ever runs at start-up");
    Ok(())
}

#[tokio::test]
async fn purge_serves_retention_and_keeps_dead_letters() -> TestResult {
    let root = tempfile::tempdir()?;
    let s = SqliteStore::open(root.path())?;
    for (g, k) in [("a", "dead"), ("b", "acked")] {
        s.admit(&key(k), t(0)).await?;
        s.send(&job(g, k), t(0)).await?;
    }
    let d = s.receive(10, t(0), LEASE).await?;
    s.settle(&d[0].receipt, &Settle::DeadLetter { reason: "gave up after 5 failed attempts".into() }, t(5)).await?;
    s.settle(&d[1].receipt, &Settle::Ack, t(5)).await?;
    s.claim(&key("acked"), "w", t(0), LEASE).await?;
    s.complete(&key("acked"), "w", &TurnOutcome::Silent, t(1)).await?;
    ProfileStore::put(&s, &Profile::new(Phone::parse("+4917612345678")?, t(0))).await?;
    let day = 86_400;
    let retention = Retention::default();
    assert_eq!(s.purge(&retention, t(13 * day)).await?, Purged::default(), "nothing is old enough yet");
    let purged = s.purge(&retention, t(400 * day)).await?;
    assert_eq!(purged, Purged { keys: 2, history: 0, profiles: 1, turns: 0 }, "the done key and the dead job's admission");
    assert_eq!(s.admit(&key("acked"), t(400 * day)).await?, Admission::New, "its key was forgotten");
    assert_eq!(s.dead_letters(10).await?.len(), 1, "dead letters wait for an operator");
    Ok(())
}

#[test]
fn a_version_1_store_is_migrated_with_its_queue_and_keys() -> TestResult {
    let root = tempfile::tempdir()?;
    {
        let mut conn = rusqlite::Connection::open(root.path().join(DB_FILE))?;
        let tx = conn.transaction()?;
        tx.execute_batch(schema::V1_FOR_TESTS)?;
        tx.pragma_update(None, "user_version", 1)?;
        let payload = serde_json::to_string(&job("g", "old-waiting"))?;
        tx.execute("INSERT INTO jobs (key, grp, payload, enqueued_at, available_at, attempt) VALUES ('old-waiting', 'g', ?1, 5, 5, 2)", [&payload])?;
        tx.execute("INSERT INTO queue_keys (key, enqueued_at) VALUES ('old-waiting', 5), ('old-acked', 3)", [])?;
        tx.execute("INSERT INTO claims (key, owner, phase, outcome, done_at) VALUES ('old-acked', 'w', 'done', '{\"outcome\":\"silent\"}', 4)", [])?;
        tx.commit()?;
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let s = SqliteStore::open(root.path())?;
        assert_eq!(s.schema_version().await?, schema::VERSION);
        assert_eq!(s.admit(&key("old-waiting"), t(9)).await?, Admission::Duplicate, "the queue's key became an admission");
        assert_eq!(s.claim(&key("old-acked"), "w2", t(9), LEASE).await?, Claim::Done(TurnOutcome::Silent));
        let d = s.receive(10, t(9), LEASE).await?;
        assert_eq!((d.len(), d[0].failures), (1, 1), "two deliveries were one failure and this one");
        Ok(())
    })
}

#[cfg(unix)]
#[test]
fn the_store_is_private_on_disk() -> TestResult {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir()?;
    let dir = root.path().join("data");
    let s = SqliteStore::open(&dir)?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(s.admit(&key("k"), t(0)))?;
    let mode = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.permissions().mode() & 0o777);
    assert_eq!(mode(&dir)?, 0o700);
    for f in [DB_FILE, LOCK_FILE, "olbridge.sqlite3-wal", "olbridge.sqlite3-shm"] {
        assert_eq!(mode(&dir.join(f))?, 0o600, "{f}");
    }
    drop(s);
    // A database file someone made world-readable is narrowed at the next open.
    std::fs::set_permissions(dir.join(DB_FILE), std::fs::Permissions::from_mode(0o644))?;
    drop(SqliteStore::open(&dir)?);
    assert_eq!(mode(&dir.join(DB_FILE))?, 0o600);
    Ok(())
}

/// The child half of `sigkill_loses_and_duplicates_nothing`: enqueues and completes keys as fast
/// as it can, printing each one after its call returned, until it is killed. Does nothing (and
/// passes) unless started by the parent.
#[tokio::test]
async fn sigkill_child() -> TestResult {
    let Some(dir) = std::env::var_os("OLBRIDGE_SIGKILL_CHILD_DIR") else {
        return Ok(());
    };
    let s = SqliteStore::open(std::path::Path::new(&dir))?;
    let mut out = std::io::stdout().lock();
    for i in 0..1_000_000 {
        let k = format!("k{i}");
        s.admit(&key(&k), t(0)).await?;
        s.send(&job(&format!("g{}", i % 7), &k), t(0)).await?;
        writeln!(out, "enqueued {i}")?;
        s.claim(&key(&k), "child", t(0), LEASE).await?;
        s.complete(&key(&k), "child", &TurnOutcome::Silent, t(0)).await?;
        writeln!(out, "completed {i}")?;
        out.flush()?;
    }
    Ok(())
}

#[test]
fn sigkill_loses_and_duplicates_nothing() -> TestResult {
    let root = tempfile::tempdir()?;
    let mut child = Command::new(std::env::current_exe()?)
        .args(["--exact", "tests::sigkill_child", "--nocapture", "--test-threads=1"])
        .env("OLBRIDGE_SIGKILL_CHILD_DIR", root.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (mut enqueued, mut completed) = (Vec::new(), Vec::new());
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        if let Some(i) = line.strip_prefix("enqueued ") {
            enqueued.push(i.parse::<u64>()?);
        } else if let Some(i) = line.strip_prefix("completed ") {
            completed.push(i.parse::<u64>()?);
        }
        if completed.len() >= 300 {
            break;
        }
    }
    child.kill()?; // SIGKILL: no destructor, no flush, no unlock runs in the child.
    child.wait()?;
    assert!(completed.len() >= 300, "the child stopped early");

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let s = SqliteStore::open(root.path())?; // the kernel released the dead child's lock
        for i in &enqueued {
            assert_eq!(s.admit(&key(&format!("k{i}")), t(1)).await?, Admission::Duplicate, "k{i} was lost");
        }
        for i in &completed {
            assert_eq!(s.claim(&key(&format!("k{i}")), "parent", t(1), LEASE).await?, Claim::Done(TurnOutcome::Silent));
        }
        let (jobs, keys, integrity): (i64, i64, String) = s
            .run(|c| {
                let n = |sql: &str| c.query_row(sql, [], |r| r.get::<_, i64>(0));
                let ok = c.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
                Ok((n("SELECT COUNT(*) FROM jobs")?, n("SELECT COUNT(DISTINCT key) FROM jobs")?, ok))
            })
            .await?;
        assert_eq!(integrity, "ok");
        assert_eq!(jobs, keys, "one job per key, none twice");
        assert!(jobs as usize >= enqueued.len());
        Ok(())
    })
}
