//! The binary as a command-line tool: `.env` is read the way the client's scripts read it and its
//! errors never print a value, output into a closed pipe (`olbridge stats | head`) is a quiet
//! success rather than a panic, and an error names each cause once.

use std::process::Stdio;

use olbridge_tests::{AppOptions, PHONE, TestApp, olbridge_command, poll_until, run_olbridge};

use crate::REPLY_TIMEOUT;

const SECRET: &str = "SECRETBOTTOKEN";

#[tokio::test]
async fn dotenv_reads_the_readme_format_lets_the_environment_win_and_never_prints_a_value() {
    let dir = tempfile::TempDir::new().unwrap();
    let store = dir.path().join("store-from-dotenv");
    let env_file = dir.path().join(".env");
    let template =
        format!("# as in README.md\nBOT_HTTP_AUTH=Bearer <token>            # optional\nexport OLBRIDGE_DATA_DIR={}   # the store\n", store.display());
    olbridge::env::write_private(&env_file, &template).unwrap();
    // `stats` reads the store named in .env: its error shows the path, without the comment.
    let out = run_olbridge(dir.path(), &[], &["stats"]).await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("no olbridge store in {} (", store.display())), "{stderr}");

    let other = dir.path().join("from-the-environment");
    let other_str = other.display().to_string();
    let out = run_olbridge(dir.path(), &[("OLBRIDGE_DATA_DIR", &other_str)], &["stats"]).await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("no olbridge store in {other_str} (")), "the real environment wins: {stderr}");

    olbridge::env::write_private(&env_file, &format!("OLBRIDGE_DATA_DIR=x\nBOT_HTTP_AUTH=\"Bearer {SECRET}\n")).unwrap();
    let out = run_olbridge(dir.path(), &[], &["stats"]).await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains(&format!("{}, line 2: BOT_HTTP_AUTH: ", env_file.display())), "{stderr}");
    assert!(!stderr.contains(SECRET), "{stderr}");
}

#[cfg(unix)]
#[tokio::test]
async fn a_dotenv_others_can_read_is_refused_with_the_fix_unless_explicitly_allowed() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::TempDir::new().unwrap();
    let store = dir.path().join("store");
    let env_file = dir.path().join(".env");
    std::fs::write(&env_file, format!("OLBRIDGE_DATA_DIR={}\nBOT_HTTP_AUTH=Bearer {SECRET}\n", store.display())).unwrap();
    std::fs::set_permissions(&env_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run_olbridge(dir.path(), &[], &["stats"]).await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains(&format!("{} can be read by other users (mode 644)", env_file.display())), "{stderr}");
    assert!(stderr.contains(&format!("chmod 600 {}", env_file.display())), "{stderr}");
    assert!(!stderr.contains("no olbridge store"), "refused before the configuration is used: {stderr}");

    // Allowed from the real environment: it runs (to `stats`' own error) with a loud warning.
    let out = run_olbridge(dir.path(), &[("OLBRIDGE_ALLOW_INSECURE_ENV", "1")], &["stats"]).await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("WARN") && stderr.contains("can be read by other users and OLBRIDGE_ALLOW_INSECURE_ENV=1 lets it be used"), "{stderr}");
    assert!(stderr.contains(&format!("no olbridge store in {} (", store.display())), "{stderr}");
    assert!(!stderr.contains(SECRET), "{stderr}");

    // The file cannot vouch for itself.
    std::fs::write(&env_file, "OLBRIDGE_ALLOW_INSECURE_ENV=1\n").unwrap();
    let out = run_olbridge(dir.path(), &[], &["stats"]).await.unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("can be read by other users"));

    // chmod 600 fixes it.
    std::fs::set_permissions(&env_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = run_olbridge(dir.path(), &[], &["stats"]).await.unwrap();
    assert!(!String::from_utf8_lossy(&out.stderr).contains("can be read by other users"));
}

#[tokio::test]
async fn with_a_log_dir_serve_also_logs_to_a_daily_file_and_stderr_is_unchanged() {
    let logs = tempfile::TempDir::new().unwrap();
    let extra_env = vec![("OLBRIDGE_LOG_DIR".to_owned(), logs.path().display().to_string()), ("RUST_LOG".to_owned(), "info".to_owned())];
    let app = TestApp::spawn_process(AppOptions { extra_env, ..AppOptions::default() }).await.unwrap();
    app.customer_writes(PHONE, "hello").await.unwrap();
    app.wait_inbox(PHONE, 1, REPLY_TIMEOUT).await;
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let file = logs.path().join(format!("olbridge.{today}.log"));
    // The writer is non-blocking: wait for its thread to have written (the child is killed below).
    let text = poll_until(REPLY_TIMEOUT, || async { std::fs::read_to_string(&file).unwrap_or_default() }, |t| t.contains("receiver limits")).await;
    assert!(text.lines().any(|l| l.contains("INFO") && l.contains("receiver limits")), "{text}");
    let files: Vec<_> = std::fs::read_dir(logs.path()).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files, [file], "one file, today's");
    assert!(app.serve_log().contains("receiver limits"), "stderr still gets every line");
    app.shutdown().await;
}

#[tokio::test]
async fn admin_output_into_a_closed_pipe_is_a_quiet_success() {
    let app = TestApp::spawn(AppOptions::default()).await.unwrap();
    app.customer_writes(PHONE, "hello").await.unwrap();
    app.wait_turns(1, REPLY_TIMEOUT).await;
    let dir = tempfile::TempDir::new().unwrap();
    let env: Vec<(&str, &str)> = app.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    for args in [&["stats"][..], &["dead-letters"], &["read", "--once"], &["doctor"]] {
        // The reader is gone before the child starts: its first write meets a closed pipe.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let mut cmd = olbridge_command(dir.path(), &env).unwrap();
        cmd.args(args).stdin(Stdio::null()).stdout(writer).stderr(Stdio::piped());
        let out = cmd.spawn().unwrap().wait_with_output().await.unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {:?} {stderr}", out.status);
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn a_data_dir_that_is_not_a_directory_is_reported_with_its_cause_once() {
    let dir = tempfile::TempDir::new().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    for data_dir in [file.clone(), file.join("below")] {
        let data_dir = data_dir.display().to_string();
        let env = [
            ("B24_WEBHOOK_BASE", "https://example.bitrix24.com/rest/1/abc123def456/"),
            ("BOT_HTTP_URL", "http://127.0.0.1:9/bot"),
            ("B24_BOT_ID", "5"),
            ("B24_BOT_CLIENT_ID", "x"),
            ("OLBRIDGE_LISTEN", "127.0.0.1:0"),
            ("OLBRIDGE_DATA_DIR", &data_dir),
        ];
        let out = run_olbridge(dir.path(), &env, &["serve"]).await.unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        let error = stderr.lines().find(|l| l.starts_with("error:")).unwrap_or_else(|| panic!("{stderr}"));
        assert!(error.contains(&data_dir), "{error}");
        assert_eq!(error.matches("(os error").count(), 1, "{error}");
    }
}
