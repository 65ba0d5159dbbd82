//! No secret and no phone number in the receiver's log lines, at TRACE, compact and JSON: the
//! events carry them in every field a customer or a forger controls.

use std::io::Write;
use std::sync::{Arc, Mutex};

use olbridge_core::memory::MemoryStore;
use serde_json::{Value, json};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;

use super::*;

/// Formatted log output, captured.
#[derive(Clone, Default)]
pub(super) struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Captures TRACE and up in the compact and the JSON format at once, on this thread.
pub(super) fn capture() -> (Captured, Captured, tracing::subscriber::DefaultGuard) {
    olbridge_core::testing::listen_through_scoped_subscribers();
    let (compact, json) = (Captured::default(), Captured::default());
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::filter::LevelFilter::TRACE)
        .with(tracing_subscriber::fmt::layer().compact().with_ansi(false).with_writer(compact.clone()))
        .with(tracing_subscriber::fmt::layer().json().flatten_event(true).with_writer(json.clone()));
    (compact, json, tracing::subscriber::set_default(subscriber))
}

const PHONE_DIGITS: &str = "4915112345678";
const TOKEN: &str = "192735";

fn secrets() -> [&'static str; 4] {
    [PHONE_DIGITS, TOKEN, "botauth-Zq81xK", "hmacsecret-Pw4u9Y"]
}

/// The fixture with `fields` rewritten (decoded keys) in its form body.
fn with_fields(fields: &[(&str, String)]) -> Request {
    let mut v: Value = serde_json::from_str(MESSAGEADD).unwrap();
    let body = v["body"].as_str().unwrap().to_owned();
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (k, val) in url::form_urlencoded::parse(body.as_bytes()) {
        let new = fields.iter().find(|(f, _)| *f == k).map(|(_, v)| v.clone());
        out.append_pair(&k, new.as_deref().unwrap_or(&val));
    }
    v["body"] = json!(out.finish());
    request(&v.to_string())
}

#[tokio::test]
async fn no_secret_or_phone_number_in_the_receivers_logs() {
    let (compact, json_lines, _guard) = capture();
    let store = Arc::new(MemoryStore::new());
    let (deps, _) = fresh(&store);
    let everything = format!("+{PHONE_DIGITS} {}", secrets().join(" "));
    let whatsapp = format!("whatsappbyedna|1|{PHONE_DIGITS}@s|13");
    let genuine = || {
        vec![
            ("data[PARAMS][MESSAGE]", everything.clone()),
            ("data[PARAMS][MESSAGE_ORIGINAL]", everything.clone()),
            ("data[PARAMS][CHAT_ENTITY_ID]", whatsapp.clone()),
            ("data[USER][NAME]", everything.clone()),
            ("data[USER][FIRST_NAME]", everything.clone()),
        ]
    };
    assert_eq!(call(&deps, with_fields(&genuine())).await.0, 200);
    assert_eq!(call(&deps, with_fields(&genuine())).await.0, 200, "duplicate");
    let mut forged = genuine();
    forged.push(("auth[application_token]", format!("{TOKEN}0")));
    assert_eq!(call(&deps, with_fields(&forged)).await.0, 401);
    let mut malformed = genuine();
    malformed.push(("data[PARAMS][MESSAGE_ID]", everything.clone()));
    assert_eq!(call(&deps, with_fields(&malformed)).await.0, 400);
    let mut foreign = genuine();
    foreign.push(("auth[domain]", format!("{PHONE_DIGITS}.bitrix24.com")));
    assert_eq!(call(&deps, with_fields(&foreign)).await.0, 403);
    deps.receiver.write().unwrap().settings.sources.allowed = Some(olbridge_core::domain::allowlist::CidrList::parse("198.51.100.0/24").unwrap());
    assert_eq!(call(&deps, with_fields(&genuine())).await.0, 403);

    for (format, text) in [("compact", compact.text()), ("json", json_lines.text())] {
        assert!(text.contains("event enqueued") && text.contains("event refused"), "{format}: the events were logged: {text}");
        for secret in secrets() {
            let leaks: Vec<&str> = text.lines().filter(|l| l.contains(secret)).collect();
            assert!(leaks.is_empty(), "{format}: {secret} leaked in {leaks:#?}");
        }
    }
}
