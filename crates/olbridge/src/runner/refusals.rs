//! What the receiver turned away, counted and summarised instead of logged line by line.
//!
//! The receiver is on the internet: anyone can POST a forged event or hold a connection open
//! without finishing a request. A log line each would let them fill the disk and bury the lines that
//! matter, so each refusal is logged at DEBUG (there when someone investigates) and counted, and
//! [`report`] writes at most one WARN line per interval with the counts per reason. A store failure
//! (503) is not a refusal but our fault: it keeps its own WARN line each, as before.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use olbridge_core::usecase::receive::ReceiveError;
use tokio::sync::watch;
use tracing::{debug, warn};

/// How often the summary is written (when there is anything to say).
pub(crate) const SUMMARY_EVERY: Duration = Duration::from_secs(60);

/// Why a request or connection was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    /// 413: the body is larger than `OLBRIDGE_MAX_BODY_BYTES`.
    TooLarge,
    /// 400: not an event we can read.
    Malformed,
    /// 401: wrong or missing application token.
    Unauthorized,
    /// 401: `ts` outside the accepted window.
    Stale,
    /// 403: another portal's domain or member id.
    UnknownPortal,
    /// 403: the source address is outside `OLBRIDGE_ALLOWED_CIDRS` (refused before the body).
    NotAllowed,
    /// The request head did not arrive within the header timeout.
    HeaderTimeout,
    /// 408: the body did not arrive within the body timeout.
    BodyTimeout,
    /// A new connection sent nothing within the idle timeout.
    Silent,
    /// Closed at the connection cap to make room for a newer connection.
    Evicted,
}

impl Reason {
    const ALL: [Reason; 10] = [
        Reason::TooLarge,
        Reason::Malformed,
        Reason::Unauthorized,
        Reason::Stale,
        Reason::UnknownPortal,
        Reason::NotAllowed,
        Reason::HeaderTimeout,
        Reason::BodyTimeout,
        Reason::Silent,
        Reason::Evicted,
    ];

    /// The stable code: in refused events' bodies and in the summary.
    pub(crate) fn code(self) -> &'static str {
        match self {
            Reason::TooLarge => "too_large",
            Reason::Malformed => "malformed",
            Reason::Unauthorized => "unauthorized",
            Reason::Stale => "stale",
            Reason::UnknownPortal => "unknown_portal",
            Reason::NotAllowed => "not_allowed",
            Reason::HeaderTimeout => "header_timeout",
            Reason::BodyTimeout => "body_timeout",
            Reason::Silent => "silent",
            Reason::Evicted => "evicted",
        }
    }

    /// The reason `receive` refused an event; `None` for a store failure, which is no refusal.
    fn of(e: &ReceiveError) -> Option<Self> {
        match e {
            ReceiveError::TooLarge(_) => Some(Reason::TooLarge),
            ReceiveError::Malformed(_) => Some(Reason::Malformed),
            ReceiveError::Forged => Some(Reason::Unauthorized),
            ReceiveError::Stale(_) => Some(Reason::Stale),
            ReceiveError::UnknownPortal => Some(Reason::UnknownPortal),
            ReceiveError::NotAllowed => Some(Reason::NotAllowed),
            ReceiveError::Store(_) => None,
        }
    }
}

/// Counts per [`Reason`] since the last summary.
#[derive(Debug, Default)]
pub(crate) struct Refusals {
    counts: [AtomicU64; Reason::ALL.len()],
}

impl Refusals {
    /// Logs and counts an event `receive` refused; returns the code for the response body.
    pub(crate) fn event(&self, status: u16, e: &ReceiveError) -> &'static str {
        match Reason::of(e) {
            Some(reason) => {
                debug!(status, reason = %e, "event refused");
                self.count(reason);
                reason.code()
            }
            None => {
                warn!(error = %e, "event not stored");
                "unavailable"
            }
        }
    }

    /// Counts a refusal the caller has logged (at DEBUG) itself.
    pub(crate) fn count(&self, reason: Reason) {
        self.counts[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The counts since the last call, or `None` when nothing was refused.
    pub(crate) fn take(&self) -> Option<Summary> {
        let counts: Vec<(Reason, u64)> = Reason::ALL.iter().map(|&r| (r, self.counts[r as usize].swap(0, Ordering::Relaxed))).filter(|(_, n)| *n > 0).collect();
        if counts.is_empty() { None } else { Some(Summary(counts)) }
    }

    /// Writes the summary line, if there is one.
    fn flush(&self, every: Duration) {
        if let Some(summary) = self.take() {
            warn!(total = summary.total(), counts = %summary, every_sec = every.as_secs(), "requests refused since the last summary");
        }
    }
}

/// What was refused in one interval: `(reason, count)` for each reason seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Summary(Vec<(Reason, u64)>);

impl Summary {
    fn total(&self) -> u64 {
        self.0.iter().map(|(_, n)| n).sum()
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (reason, n)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{}={n}", reason.code())?;
        }
        Ok(())
    }
}

/// Writes the summary every `every` until `stop`, and once more on the way out.
pub(crate) async fn report(refusals: &Refusals, every: Duration, mut stop: watch::Receiver<bool>) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => refusals.flush(every),
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    refusals.flush(every);
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    /// The formatted log lines, captured.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Lines {
        type Writer = Lines;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    impl Lines {
        fn all(&self) -> Vec<String> {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap().lines().map(str::to_owned).collect()
        }

        fn at_info_or_above(&self) -> Vec<String> {
            self.all().into_iter().filter(|l| !l.contains("DEBUG")).collect()
        }
    }

    fn capture() -> (Lines, tracing::subscriber::DefaultGuard) {
        let lines = Lines::default();
        let subscriber = tracing_subscriber::fmt().with_writer(lines.clone()).with_max_level(tracing::Level::DEBUG).with_ansi(false).finish();
        (lines, tracing::subscriber::set_default(subscriber))
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_flood_of_forged_events_gives_one_summary_line_per_interval_not_one_line_each() {
        let (lines, _guard) = capture();
        let refusals = Arc::new(Refusals::default());
        let (stop_tx, stop) = watch::channel(false);
        let reporter = tokio::spawn({
            let refusals = Arc::clone(&refusals);
            async move { report(&refusals, SUMMARY_EVERY, stop).await }
        });
        for _ in 0..500 {
            assert_eq!(refusals.event(401, &ReceiveError::Forged), "unauthorized");
        }
        refusals.count(Reason::HeaderTimeout);
        tokio::task::yield_now().await;
        assert_eq!(lines.at_info_or_above(), Vec::<String>::new(), "nothing above DEBUG before the interval ends");
        assert_eq!(lines.all().iter().filter(|l| l.contains("DEBUG") && l.contains("event refused")).count(), 500, "each one is there at DEBUG");

        tokio::time::sleep(SUMMARY_EVERY + Duration::from_secs(1)).await;
        let logged = lines.at_info_or_above();
        assert_eq!(logged.len(), 1, "{logged:?}");
        assert!(logged[0].contains("WARN") && logged[0].contains("unauthorized=500 header_timeout=1") && logged[0].contains("total=501"), "{logged:?}");

        // A quiet minute writes nothing; the last counts are written on the way out.
        tokio::time::sleep(SUMMARY_EVERY).await;
        assert_eq!(lines.at_info_or_above().len(), 1);
        refusals.count(Reason::Silent);
        stop_tx.send(true).unwrap();
        reporter.await.unwrap();
        let logged = lines.at_info_or_above();
        assert_eq!(logged.len(), 2, "{logged:?}");
        assert!(logged[1].contains("silent=1"), "{logged:?}");
    }

    #[test]
    fn a_store_failure_is_still_a_warning_each_and_is_not_counted() {
        let (lines, _guard) = capture();
        let refusals = Refusals::default();
        let code = refusals.event(503, &ReceiveError::Store(olbridge_core::ports::StoreError::Backend("disk full".into())));
        assert_eq!(code, "unavailable");
        assert_eq!(lines.at_info_or_above().len(), 1);
        assert_eq!(refusals.take(), None);
    }

    #[test]
    fn codes_match_the_reasons_receive_gives() {
        let refusals = Refusals::default();
        assert_eq!(refusals.event(403, &ReceiveError::UnknownPortal), "unknown_portal");
        assert_eq!(refusals.take().map(|s| s.to_string()).as_deref(), Some("unknown_portal=1"));
        assert_eq!(refusals.take(), None, "take resets the counts");
        assert_eq!(refusals.event(403, &ReceiveError::NotAllowed), "not_allowed");
        assert_eq!(refusals.take().map(|s| s.to_string()).as_deref(), Some("not_allowed=1"));
    }
}
