//! No secret and no phone number in the worker's log lines, at TRACE, compact and JSON: the job's
//! message carries them in its text, its author's name and its WhatsApp user code, and the bot's
//! answer repeats them (the portal and the bot are the fakes; the real clients' lines are covered
//! end to end by `tests/e2e/redaction.rs`).

use std::io::Write;
use std::sync::{Arc, Mutex};

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;

use super::*;

/// Formatted log output, captured.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Logs {
    type Writer = Logs;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

const PHONE_DIGITS: &str = "4915112345678";
const SECRETS: [&str; 4] = [PHONE_DIGITS, "192735", "botauth-Zq81xK", "hmacsecret-Pw4u9Y"];

#[tokio::test]
async fn no_secret_or_phone_number_in_the_workers_logs() {
    olbridge_core::testing::listen_through_scoped_subscribers();
    let (compact, json_lines) = (Logs::default(), Logs::default());
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::filter::LevelFilter::TRACE)
        .with(tracing_subscriber::fmt::layer().compact().with_ansi(false).with_writer(compact.clone()))
        .with(tracing_subscriber::fmt::layer().json().flatten_event(true).with_writer(json_lines.clone()));
    let _guard = tracing::subscriber::set_default(subscriber);

    let everything = format!("+{PHONE_DIGITS} {}", SECRETS.join(" "));
    let edit = |v: &mut Value| {
        let record = &mut v["Records"][0];
        let mut job: Value = serde_json::from_str(record["body"].as_str().unwrap()).unwrap();
        let m = &mut job["event"];
        m["text"] = Value::String(format!("hello {everything}"));
        m["author"]["name"] = Value::String(everything.clone());
        m["lines"]["connector"] = Value::String("whatsappbyedna".into());
        m["lines"]["user_code"] = Value::String(format!("whatsappbyedna|1|{PHONE_DIGITS}@s|13"));
        m["lines"]["phone"] = Value::String(format!("+{PHONE_DIGITS}"));
        record["body"] = Value::String(job.to_string());
    };
    // Answered (the echo bot repeats every secret), then a chat whose posts fail once.
    let s = setup(0);
    assert_eq!(run(&s, event(ONE_JOB, edit)).await, Vec::<String>::new());
    assert!(s.portal.inner.posts()[0].contains(PHONE_DIGITS), "the secrets were in play");
    let failing = setup(1);
    assert_eq!(run(&failing, event(ONE_JOB, edit)).await.len(), 1);

    for (format, text) in [("compact", compact.text()), ("json", json_lines.text())] {
        assert!(text.contains("turn finished"), "{format}: the turn was logged: {text}");
        for secret in SECRETS {
            let leaks: Vec<&str> = text.lines().filter(|l| l.contains(secret)).collect();
            assert!(leaks.is_empty(), "{format}: {secret} leaked in {leaks:#?}");
        }
    }
}
