//! `olbridge demo` through the real binary: the prompt shows, commands are never sent as the
//! customer's text, commands in `--say` wait for no reply, a second `/finish` is no crash, and a
//! malformed FAQ is refused with its file and line.

use std::process::Stdio;

use olbridge_core::config::DEFAULT_HANDOFF_MESSAGE;
use olbridge_tests::{olbridge_command, run_olbridge};
use tokio::io::AsyncWriteExt as _;

#[tokio::test]
async fn scripted_commands_wait_for_nothing_and_never_reach_the_bot() {
    let dir = tempfile::TempDir::new().unwrap();
    let say = ["/finish", "/op", "When are you open?", "/op", "I want to talk to an agent", "/op Hi, Olga here.", "/finish", "/finish", "/op still there?"];
    let mut args = vec!["demo", "--think-ms", "0"];
    for s in say {
        args.extend(["--say", s]);
    }
    let out = run_olbridge(dir.path(), &[], &args).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    for expected in [
        "(no chat yet: write something first)",
        "(usage: /op <text>",
        "bot> We're open Monday to Saturday",
        DEFAULT_HANDOFF_MESSAGE,
        "operator> Hi, Olga here.",
        "(the operator closed the session",
        "(there is no open session",
    ] {
        assert!(stdout.contains(expected), "{expected:?} missing:\n{stdout}");
    }
    assert_eq!(stdout.matches("(the operator closed the session").count(), 1, "{stdout}");
    assert!(!stdout.contains("only a demo bot"), "a bare /op reached the bot as the customer's text:\n{stdout}");
    assert!(!stdout.contains("operator> still there?"), "{stdout}");
}

#[tokio::test]
async fn the_interactive_demo_shows_a_prompt() {
    let dir = tempfile::TempDir::new().unwrap();
    let mut cmd = olbridge_command(dir.path(), &[]).unwrap();
    cmd.args(["demo"]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"/help\n/quit\n").await.unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.matches("you> ").count() >= 2, "{stdout}");
}

#[tokio::test]
async fn a_malformed_faq_is_refused_with_its_file_and_line() {
    let dir = tempfile::TempDir::new().unwrap();
    let faq = dir.path().join("faq.txt");
    std::fs::write(&faq, "# my FAQ\nhours, open\nWe're open.\n").unwrap();
    let faq_arg = faq.display().to_string();
    let out = run_olbridge(dir.path(), &[], &["demo", "--faq", &faq_arg, "--say", "hi"]).await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains(&format!("{faq_arg}, line 2: ")), "{stderr}");
}
