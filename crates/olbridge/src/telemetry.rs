//! Logging: human-readable by default, JSON with `--log-json` / `OLBRIDGE_LOG_FORMAT=json`,
//! filtered with `RUST_LOG` (default `info`; from the environment or `.env`).
//!
//! What is logged is decided at the call sites: phone numbers only redacted, secrets never (their
//! types print `***`), message texts only at `debug`.
//!
//! # Files (`OLBRIDGE_LOG_DIR`)
//! `olbridge serve` also writes every line to `<dir>/olbridge.<YYYY-MM-DD>.log`, a new file each day
//! (UTC), keeping the newest `OLBRIDGE_LOG_KEEP` (14) and deleting older ones as it rolls over.
//! This is `tracing-appender`'s rolling appender, not a hand-written rotator. The file gets the same
//! lines and format as stderr, without colour codes. Writes go through a non-blocking writer (a
//! worker thread), so a slow disk never holds up a turn; its [`Guard`] flushes what is buffered when
//! dropped, so the caller keeps it until the process ends. When the buffer is full (a flood of lines
//! the disk cannot keep up with) lines are dropped rather than waited for; stderr still gets them.

use std::path::{Path, PathBuf};

use tracing_subscriber::layer::{Layered, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// Where the log files go and how many are kept (`OLBRIDGE_LOG_DIR`, `OLBRIDGE_LOG_KEEP`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFiles {
    /// The directory (created if missing).
    pub dir: PathBuf,
    /// How many daily files are kept.
    pub keep: usize,
}

/// The file name prefix: files are `olbridge.<date>.log`.
pub const FILE_PREFIX: &str = "olbridge";

/// Keeps the file writer's worker alive and flushes it when dropped; hold it until the process
/// ends. Empty when there is no log file.
#[must_use = "dropping the guard stops the log file writer"]
#[derive(Debug, Default)]
pub struct Guard {
    _worker: Option<tracing_appender::non_blocking::WorkerGuard>,
}

/// Why the log files cannot be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write log files in {}: {cause} (OLBRIDGE_LOG_DIR)", dir.display())]
pub struct LogDirError {
    dir: PathBuf,
    cause: String,
}

/// Installs the global subscriber; a second call is a no-op. `rust_log` is `RUST_LOG` from the
/// environment or `.env` (the caller reads it: nothing here reads the environment).
pub fn init(json: bool, rust_log: Option<&str>) {
    init_with_default(json, DEFAULT_FILTER, rust_log);
}

/// The filter when `RUST_LOG` is not set.
pub const DEFAULT_FILTER: &str = "info,hyper=warn,reqwest=warn";

/// As [`init`], with another default filter when `RUST_LOG` is not set (or not a valid filter).
pub fn init_with_default(json: bool, default_filter: &str, rust_log: Option<&str>) {
    let _ = subscriber(default_filter, rust_log, vec![stderr_layer(json)]).try_init();
}

/// As [`init`], and every line also goes to daily files in `files.dir`.
pub fn init_with_files(json: bool, rust_log: Option<&str>, files: &LogFiles) -> Result<Guard, LogDirError> {
    let (file_layer, guard) = file_layer(json, files)?;
    let _ = subscriber(DEFAULT_FILTER, rust_log, vec![stderr_layer(json), file_layer]).try_init();
    Ok(guard)
}

type Base = Layered<EnvFilter, Registry>;
type BoxedLayer = Box<dyn Layer<Base> + Send + Sync>;

/// The filter and the layers, as one subscriber (tests install it locally).
pub fn subscriber(default_filter: &str, rust_log: Option<&str>, layers: Vec<BoxedLayer>) -> impl tracing::Subscriber + Send + Sync {
    let filter = rust_log.and_then(|f| EnvFilter::try_new(f).ok()).unwrap_or_else(|| EnvFilter::new(default_filter));
    tracing_subscriber::registry().with(filter).with(layers)
}

/// Lines to stderr, JSON or compact.
pub fn stderr_layer(json: bool) -> BoxedLayer {
    format_layer(json, std::io::stderr, true)
}

/// Lines to any writer, JSON (one object per line, fields flattened) or compact.
pub fn format_layer<W>(json: bool, writer: W, ansi: bool) -> BoxedLayer
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let layer = tracing_subscriber::fmt::layer().with_writer(writer).with_ansi(ansi);
    if json { layer.json().flatten_event(true).boxed() } else { layer.compact().boxed() }
}

/// Lines to daily-rotated files in `files.dir`, through a non-blocking writer.
pub fn file_layer(json: bool, files: &LogFiles) -> Result<(BoxedLayer, Guard), LogDirError> {
    let appender = rolling_appender(&files.dir, files.keep)?;
    let (writer, guard) = tracing_appender::non_blocking(appender);
    Ok((format_layer(json, writer, false), Guard { _worker: Some(guard) }))
}

fn rolling_appender(dir: &Path, keep: usize) -> Result<tracing_appender::rolling::RollingFileAppender, LogDirError> {
    let fail = |cause: String| LogDirError { dir: dir.to_owned(), cause };
    std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
    tracing_appender::rolling::Builder::new()
        .rotation(tracing_appender::rolling::Rotation::DAILY)
        .filename_prefix(FILE_PREFIX)
        .filename_suffix("log")
        .max_log_files(keep.max(1))
        .build(dir)
        .map_err(|e| fail(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_files(dir: &Path) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        files
    }

    #[test]
    fn with_a_log_dir_lines_go_to_a_dated_file_in_both_formats() {
        for json in [false, true] {
            let dir = tempfile::TempDir::new().unwrap();
            let logs = dir.path().join("logs");
            let (layer, guard) = file_layer(json, &LogFiles { dir: logs.clone(), keep: 3 }).unwrap();
            let subscriber = subscriber("info", None, vec![layer]);
            tracing::subscriber::with_default(subscriber, || {
                tracing::info!(queue = 3, "a line for the file");
                tracing::debug!("below the filter");
            });
            drop(guard); // flushes the non-blocking writer
            let files = log_files(&logs);
            assert_eq!(files.len(), 1, "{files:?}");
            let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
            let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
            assert_eq!(name, format!("olbridge.{today}.log"));
            let text = std::fs::read_to_string(&files[0]).unwrap();
            assert_eq!(text.lines().count(), 1, "{text}");
            assert!(text.contains("a line for the file") && !text.contains("below the filter"), "{text}");
            assert!(!text.contains('\u{1b}'), "no colour codes in files: {text:?}");
            if json {
                let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
                assert_eq!((v["message"].as_str(), v["queue"].as_u64()), (Some("a line for the file"), Some(3)));
            }
        }
    }

    #[test]
    fn only_the_newest_files_are_kept() {
        let dir = tempfile::TempDir::new().unwrap();
        for day in 1..=5 {
            std::fs::write(dir.path().join(format!("olbridge.2020-01-0{day}.log")), "old\n").unwrap();
        }
        std::fs::write(dir.path().join("unrelated.txt"), "keep me\n").unwrap();
        // The appender prunes when it opens or rolls a file: 2 kept = today's and the newest old one.
        let (layer, guard) = file_layer(false, &LogFiles { dir: dir.path().to_owned(), keep: 2 }).unwrap();
        tracing::subscriber::with_default(subscriber("info", None, vec![layer]), || tracing::info!("today"));
        drop(guard);
        let names: Vec<String> = log_files(dir.path()).iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
        assert!(names.contains(&format!("olbridge.{today}.log")), "{names:?}");
        assert!(names.contains(&"unrelated.txt".to_owned()), "{names:?}");
        assert!(!names.contains(&"olbridge.2020-01-01.log".to_owned()), "the oldest went: {names:?}");
        assert!(names.iter().filter(|n| n.starts_with("olbridge.")).count() <= 2, "{names:?}");
    }

    #[test]
    fn an_unusable_log_dir_is_an_error_naming_it() {
        let dir = tempfile::TempDir::new().unwrap();
        let file = dir.path().join("a-file");
        std::fs::write(&file, "").unwrap();
        let e = file_layer(false, &LogFiles { dir: file.join("logs"), keep: 14 }).err().expect("not a directory");
        assert!(e.to_string().contains(&file.join("logs").display().to_string()) && e.to_string().contains("OLBRIDGE_LOG_DIR"), "{e}");
    }
}
