//! `olbridge privacy export|erase --phone` on a store a real turn wrote: export shows the profile,
//! the chat's history and the turn; erase removes them, and then no file of the data directory
//! holds the phone's digits (the database, its WAL and shared-memory files, scanned byte for
//! byte); `forget` still works and says it is an alias.

use olbridge_tests::{AppOptions, PHONE, TestApp, run_olbridge};

use crate::REPLY_TIMEOUT;

/// Which files of `dir` contain `needle`.
fn files_with(dir: &std::path::Path, needle: &str) -> Vec<String> {
    let mut hits = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() && std::fs::read(&path).unwrap().windows(needle.len()).any(|w| w == needle.as_bytes()) {
            hits.push(path.display().to_string());
        }
    }
    hits
}

#[tokio::test]
async fn export_shows_a_customers_data_and_erase_leaves_no_byte_of_the_phone() {
    let mut app = TestApp::spawn_process(AppOptions::default()).await.unwrap();
    app.customer_writes(PHONE, "hello, my number is +49 151 12345678").await.unwrap();
    app.wait_turns(1, REPLY_TIMEOUT).await;
    let dir = tempfile::TempDir::new().unwrap();
    let owned_env = app.env.clone();
    let env: Vec<(&str, &str)> = owned_env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();

    let out = run_olbridge(dir.path(), &env, &["privacy", "export", "--phone", PHONE]).await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let data: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(data["profile"]["phone"], PHONE, "{data:#}");
    let chats = data["chats"].as_array().unwrap();
    assert_eq!(chats.len(), 1, "{data:#}");
    assert!(chats[0]["history"].as_array().unwrap().iter().any(|t| t["text"] == "hello, my number is +49 151 12345678"), "{data:#}");
    assert_eq!(data["turns"].as_array().unwrap().len(), 1, "{data:#}");

    let digits = PHONE.trim_start_matches('+');
    assert!(!files_with(app.data_dir(), digits).is_empty(), "the scan sees the phone before the erase");
    // Stopped, so the erase can compact (a running bridge may hold a snapshot; the command says so).
    app.stop().await.unwrap();
    let out = run_olbridge(dir.path(), &env, &["forget", "--phone", PHONE]).await.unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("alias of `olbridge privacy erase --phone`"), "{stderr}");
    assert!(stdout.contains("1 profile(s), 1 chat(s)"), "{stdout}");
    assert!(stdout.contains("database compacted"), "{stdout}");
    assert!(!stdout.contains(digits), "the output redacts the phone: {stdout}");
    assert_eq!(files_with(app.data_dir(), digits), Vec::<String>::new());

    let out = run_olbridge(dir.path(), &env, &["privacy", "export", "--phone", PHONE]).await.unwrap();
    let data: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (data["profile"].is_null(), data["chats"].as_array().map(Vec::len), data["turns"].as_array().map(Vec::len)),
        (true, Some(0), Some(0)),
        "{data:#}"
    );
}
