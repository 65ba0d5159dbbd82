//! `olbridge stats` and `olbridge report` against a scripted message log with known answers: the
//! counts, the shares (adding up to exactly 100 %, ignored turns outside the denominator), the
//! percentiles, REST calls per answer and CSAT, per line and day; then the HTML report opened in
//! headless Chromium (installed by `scripts/test` from Debian's packages), screenshotted, and its
//! charts checked present and non-empty.

use chrono::{DateTime, Duration, TimeZone, Utc};
use olbridge_core::domain::turn::{HandoffReason, TurnOutcome, TurnRecord, TurnTimings, TurnTrace};
use olbridge_core::ports::TurnLog;
use olbridge_sqlite::SqliteStore;
use olbridge_tests::run_olbridge;
use serde_json::Value;

fn at(day: u32, minute: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, day, 9, 0, 0).unwrap() + Duration::minutes(minute)
}

fn rec(day: u32, minute: i64, line: u64, outcome: TurnOutcome, total_ms: i64, rest_calls: u32, csat: Option<&str>) -> TurnRecord {
    let received = at(day, minute);
    TurnRecord {
        keys: vec![],
        dialog: format!("chat{line}{minute}"),
        session_id: Some(7),
        outcome,
        timings: TurnTimings { received_at: received, started_at: received, bot_ms: Some(100), finished_at: received + Duration::milliseconds(total_ms) },
        bot_attempts: 1,
        trace: TurnTrace { line_id: Some(line), rest_calls: Some(rest_calls), csat: csat.map(str::to_owned), ..TurnTrace::default() },
    }
}

fn answered() -> TurnOutcome {
    TurnOutcome::Answered { reply_ids: vec![] }
}

/// Day 1, line 3: 3 answered, 1 handed off (phrase), 1 fallback, 1 gave up, 1 ignored operator
/// message, 1 CSAT answer (ignored: up), 1 window closed. Day 2, line 3: 1 answered, 1 CSAT
/// answer (down). Day 2, line 5: 1 handed off by the bot.
fn scenario() -> Vec<TurnRecord> {
    let ignored = |r: &str| TurnOutcome::Ignored { reason: r.into() };
    vec![
        rec(1, 0, 3, answered(), 1_000, 3, None),
        rec(1, 1, 3, answered(), 2_000, 3, None),
        rec(1, 2, 3, answered(), 4_000, 6, None),
        rec(1, 3, 3, TurnOutcome::HandedOff { reason: HandoffReason::Phrase { phrase: "agent".into() } }, 1_500, 4, None),
        rec(1, 4, 3, TurnOutcome::Fallback { error: "bot timeout".into() }, 30_000, 5, None),
        rec(1, 5, 3, TurnOutcome::GaveUp { error: "portal down".into() }, 60_000, 9, None),
        rec(1, 6, 3, ignored("operator_message"), 10, 0, None),
        rec(1, 7, 3, ignored("csat"), 10, 0, Some("up")),
        rec(1, 8, 3, TurnOutcome::WindowClosed { block_reason: None }, 20, 1, None),
        rec(2, 0, 3, answered(), 3_000, 4, None),
        rec(2, 1, 3, ignored("csat"), 10, 0, Some("down")),
        rec(2, 2, 5, TurnOutcome::HandedOff { reason: HandoffReason::BotRequested }, 2_500, 4, None),
    ]
}

async fn store_with_scenario() -> tempfile::TempDir {
    let dir = tempfile::TempDir::new().unwrap();
    let store = SqliteStore::open(&dir.path().join("data")).unwrap();
    for r in scenario() {
        store.record(&r).await.unwrap();
    }
    dir
}

async fn olbridge(dir: &tempfile::TempDir, args: &[&str]) -> String {
    let data = dir.path().join("data").display().to_string();
    let out = run_olbridge(dir.path(), &[("OLBRIDGE_DATA_DIR", &data)], args).await.unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn stats_per_line_and_day_have_the_known_answers_and_never_exceed_100_percent() {
    let dir = store_with_scenario().await;
    let json: Value = serde_json::from_str(&olbridge(&dir, &["stats", "--json", "--since", "2025-03-01"]).await).unwrap();
    let groups = json["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 3, "{json:#}");

    let d1 = &groups[0];
    assert_eq!((d1["day"].as_str(), d1["line"].as_u64()), (Some("2025-03-01"), Some(3)));
    assert_eq!(d1["turns"], 9);
    assert_eq!((d1["ignored"].as_u64(), d1["window_closed"].as_u64(), d1["answerable"].as_u64()), (Some(2), Some(1), Some(6)));
    // 3/6 answered, 1/6 each handed off, fallback, gave up: 500 + 166.7 + 166.7 + 166.7 → 500, 167, 167, 166.
    let shares = &d1["shares"];
    assert_eq!([&shares["answered"], &shares["handed_off"], &shares["fallback"], &shares["gave_up"]], [500, 167, 167, 166]);
    let sum: u64 = shares.as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(sum, 1000, "the shares of answerable turns add up to exactly 100 %");
    assert_eq!(d1["success_permille"], 667, "(answered + silent + handed off) / answerable");
    assert_eq!(d1["escalation_permille"], 500);
    assert_eq!(d1["escalations"], serde_json::json!({"phrase": 1, "bot_failure": 1, "gave_up": 1}));
    assert_eq!((d1["p50_ms"].as_u64(), d1["p95_ms"].as_u64()), (Some(2_000), Some(60_000)), "answerable turns only");
    assert_eq!(d1["rest_calls_per_answer"], 4.0);
    assert_eq!((d1["csat_up"].as_u64(), d1["csat_down"].as_u64()), (Some(1), Some(0)));

    let d2 = &groups[1];
    assert_eq!(
        (d2["line"].as_u64(), d2["answerable"].as_u64(), d2["shares"]["answered"].as_u64(), d2["csat_down"].as_u64()),
        (Some(3), Some(1), Some(1000), Some(1))
    );
    let d2l5 = &groups[2];
    assert_eq!((d2l5["line"].as_u64(), d2l5["handed_off"].as_u64(), d2l5["escalations"]["bot_handoff"].as_u64()), (Some(5), Some(1), Some(1)));

    let total = &json["total"];
    assert_eq!((total["turns"].as_u64(), total["answerable"].as_u64(), total["answered"].as_u64()), (Some(12), Some(8), Some(4)));
    assert_eq!(total["shares"]["answered"], 500);

    // One line only.
    let line5: Value = serde_json::from_str(&olbridge(&dir, &["stats", "--json", "--since", "2025-03-01", "--line", "5"]).await).unwrap();
    assert_eq!(line5["total"]["turns"], 1);
    // The text form says what the shares are of.
    let text = olbridge(&dir, &["stats", "--since", "2025-03-01"]).await;
    assert!(text.contains("2025-03-01") && text.contains("50.0 %") && text.contains("add up to 100 %"), "{text}");
}

/// The PNG's width and height (IHDR).
fn png_size(png: &[u8]) -> (u32, u32) {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    (be(&png[16..20]), be(&png[20..24]))
}

#[tokio::test]
async fn the_html_report_opens_in_headless_chromium_with_every_chart_drawn() {
    let dir = store_with_scenario().await;
    let html = dir.path().join("report.html");
    olbridge(&dir, &["report", "--html", &html.display().to_string(), "--since", "2025-03-01"]).await;
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(!page.replace("http://www.w3.org/2000/svg", "").contains("http"), "no network reference (the SVG namespace is a name, not a fetch)");
    assert!(!page.contains("<script") && !page.contains("<link"), "self-contained");

    let chromium = which_chromium().expect("chromium is not installed: scripts/test installs it (apt-get install chromium)");
    let shot = dir.path().join("report.png");
    let url = format!("file://{}", html.display());
    let common = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--hide-scrollbars"];
    let out = tokio::process::Command::new(&chromium)
        .args(common)
        .arg(format!("--screenshot={}", shot.display()))
        .arg("--window-size=1280,1400")
        .arg(&url)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "chromium --screenshot: {}", String::from_utf8_lossy(&out.stderr));
    // To look at the page: OLBRIDGE_KEEP_REPORT=<dir> keeps the HTML and the screenshot there.
    if let Some(keep) = std::env::var_os("OLBRIDGE_KEEP_REPORT") {
        let keep = std::path::PathBuf::from(keep);
        std::fs::copy(&html, keep.join("report.html")).unwrap();
        std::fs::copy(&shot, keep.join("report.png")).unwrap();
    }
    let png = std::fs::read(&shot).unwrap();
    assert_eq!(png_size(&png), (1280, 1400));
    assert!(png.len() > 20_000, "a page with charts, not a blank screenshot: {} bytes", png.len());

    // The DOM as Chromium parsed it: every chart is there with something drawn in it.
    let out = tokio::process::Command::new(&chromium).args(common).arg("--dump-dom").arg(&url).output().await.unwrap();
    assert!(out.status.success(), "chromium --dump-dom: {}", String::from_utf8_lossy(&out.stderr));
    let dom = String::from_utf8(out.stdout).unwrap();
    for chart in ["latency", "percentiles", "outcomes", "escalations", "csat", "rest-calls"] {
        let start = dom.find(&format!("data-chart=\"{chart}\"")).unwrap_or_else(|| panic!("chart {chart} missing"));
        let figure = &dom[start..start + dom[start..].find("</figure>").unwrap()];
        let drawn = figure.match_indices("<rect class=\"bar").any(|(i, _)| !figure[i..].split('>').next().unwrap().contains("height=\"0.0\""))
            || figure.contains("<polyline class=\"series");
        assert!(drawn, "chart {chart} is empty: {figure}");
    }
}

fn which_chromium() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join("chromium")).find(|p| p.exists())
}
