//! The docs quote log lines an operator greps and alerts on: each quote must be what the code
//! logs. A change of a log message fails here until the docs follow.

use std::path::{Path, PathBuf};

/// (doc file, the quote as the doc writes it, the literal the source must contain).
const QUOTED: &[(&str, &str, &str)] = &[
    ("docs/operations.md", "`the bot failed: fallback message and handoff`", "\"the bot failed: fallback message and handoff\""),
    (
        "docs/operations.md",
        "`a turn was given up: the customer was told and the chat handed to a human`",
        "\"a turn was given up: the customer was told and the chat handed to a human",
    ),
    (
        "docs/operations.md",
        "`cannot give a turn up yet (the customer is not told); retrying`",
        "\"cannot give a turn up yet (the customer is not told); retrying\"",
    ),
    ("docs/operations.md", "`a job kept stopping the process`", "\"a job kept stopping the process"),
    ("docs/operations.md", "`requests refused since the last summary`", "requests refused since the last summary"),
    ("docs/operations.md", "`cannot accept connections: out of descriptors`", "cannot accept connections: out of descriptors"),
    ("docs/operations.md", "`learned the portal's member id from the first verified event`", "\"learned the portal's member id from the first verified event"),
    ("docs/operations.md", "`our bot was unregistered on the portal`", "\"our bot was unregistered on the portal"),
    ("docs/operations.md", "`the portal refused the reply; handing the chat to a human`", "\"the portal refused the reply; handing the chat to a human\""),
    ("docs/operations.md", "outcome in `olbridge stats` is `ignored`", "Self::Ignored { .. } => \"ignored\""),
    ("docs/operations.md", "`poll pass failed; trying again at the next tick`", "\"poll pass failed; trying again at the next tick\""),
    ("docs/operations.md", "`poll pass found messages`", "\"poll pass found messages\""),
    ("docs/operations.md", "`timeline comment failed; retrying later`", "\"timeline comment failed; retrying later\""),
    ("docs/operations.md", "`giving up on a timeline comment`", "\"giving up on a timeline comment\""),
    ("docs/operations.md", "`an admitted message had no job`", "\"an admitted message had no job"),
    (
        "docs/operations.md",
        "`the portal reports the polled methods near their operating-time limit: polling slower`",
        "\"the portal reports the polled methods near their operating-time limit: polling slower\"",
    ),
    (
        "docs/operations.md",
        "`messages are keyed with a stand-in named after the portal's domain`",
        "messages are keyed with a stand-in named after the portal's domain",
    ),
    ("docs/bitrix24-setup.md", "logs `event refused` with `reason=event authentication failed`", "\"event refused\""),
    ("docs/operations.md", "`the portal refused to hand over the bot's events`", "\"the portal refused to hand over the bot's events"),
    (
        "docs/operations.md",
        "`cannot fetch the bot's events; nothing is acknowledged, trying again`",
        "\"cannot fetch the bot's events; nothing is acknowledged, trying again\"",
    ),
    ("docs/operations.md", "`canary passed: the bot replied in <ms> ms`", "\"canary passed: the bot replied in {latency_ms} ms\""),
    ("docs/operations.md", "`canary FAILED after <ms> ms: <why>`", "\"canary FAILED after {elapsed_ms} ms: {reason}\""),
    (
        "docs/operations.md",
        "`the bridge answered with the fallback message: the bot failed`",
        "\"the bridge answered with the fallback message: the bot failed",
    ),
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace root").to_path_buf()
}

fn rust_sources(dir: &Path, out: &mut String) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push_str(&std::fs::read_to_string(&path).unwrap());
        }
    }
}

#[test]
fn every_quoted_log_line_is_in_its_doc_and_in_the_code() {
    let mut code = String::new();
    rust_sources(&root().join("crates"), &mut code);
    for (doc, quote, literal) in QUOTED {
        let text = std::fs::read_to_string(root().join(doc)).unwrap();
        // Markdown may wrap a quote across lines.
        let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(flat.contains(quote), "{doc} no longer quotes {quote}: update this list");
        assert!(code.contains(literal), "{doc} quotes {quote}, but no source contains {literal}: fix the doc");
    }
}
