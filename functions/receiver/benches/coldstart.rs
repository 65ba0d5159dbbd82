//! Cold start of the Lambda functions: process start → first event handled, against a local Lambda
//! runtime API, with the release binaries `cargo lambda build --release` makes
//! (`target/lambda/<binary>/bootstrap`) and their resources on moto. Also the binaries' sizes.
//!
//! `cargo bench -p olbridge-receiver --bench coldstart` (needs `AWS_ENDPOINT_URL`: moto, as
//! `./scripts/test` or `scripts/aws-local moto` provide). Not a test: it asserts nothing about
//! time. The report is printed and written to `target/bench-coldstart.md`.
//!
//! The runtime API here is the minimum a function needs (`/2018-06-01/runtime/invocation/next`,
//! `…/{id}/response`, `…/{id}/error`, `…/init/error`): one invocation per process, then the process
//! is killed. Each figure is a median of `--runs` starts (default 7).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::Notify;

#[derive(Default)]
struct RuntimeApi {
    event: Mutex<Option<String>>,
    answered: Mutex<Option<(Instant, String)>>,
    done: Notify,
}

async fn next(State(api): State<Arc<RuntimeApi>>) -> Response {
    let Some(event) = api.event.lock().map(|mut e| e.take()).unwrap_or_default() else {
        // One invocation per process: park the function until it is killed.
        tokio::time::sleep(Duration::from_secs(3600)).await;
        return StatusCode::NO_CONTENT.into_response();
    };
    let mut headers = HeaderMap::new();
    let deadline = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() + 60_000).unwrap_or_default();
    for (k, v) in [
        ("lambda-runtime-aws-request-id", "cold-start-1".to_owned()),
        ("lambda-runtime-deadline-ms", deadline.to_string()),
        ("lambda-runtime-invoked-function-arn", "arn:aws:lambda:eu-central-1:123456789012:function:olbridge".to_owned()),
        ("lambda-runtime-trace-id", "Root=1-00000000-000000000000000000000000".to_owned()),
    ] {
        if let Ok(v) = HeaderValue::from_str(&v) {
            headers.insert(k, v);
        }
    }
    (headers, event).into_response()
}

async fn answer(State(api): State<Arc<RuntimeApi>>, UrlPath((_, kind)): UrlPath<(String, String)>, body: String) -> StatusCode {
    if let Ok(mut a) = api.answered.lock() {
        a.get_or_insert((Instant::now(), format!("{kind}: {body}")));
    }
    api.done.notify_waiters();
    StatusCode::ACCEPTED
}

async fn init_error(State(api): State<Arc<RuntimeApi>>, body: String) -> StatusCode {
    if let Ok(mut a) = api.answered.lock() {
        a.get_or_insert((Instant::now(), format!("init error: {body}")));
    }
    api.done.notify_waiters();
    StatusCode::ACCEPTED
}

/// Starts `bootstrap` against a fresh runtime API with `event`; returns the time to its first
/// answer and what it answered.
async fn cold_start(bootstrap: &Path, event: &str, env: &[(String, String)]) -> anyhow::Result<(Duration, String)> {
    let api = Arc::new(RuntimeApi { event: Mutex::new(Some(event.to_owned())), ..RuntimeApi::default() });
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route("/2018-06-01/runtime/invocation/{id}/{kind}", post(answer))
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .with_state(Arc::clone(&api));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let done = api.done.notified();
    let started = Instant::now();
    let mut child = tokio::process::Command::new(bootstrap)
        .env_clear()
        .envs(env.iter().cloned())
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "olbridge")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let _ = tokio::time::timeout(Duration::from_secs(30), done).await;
    let _ = child.start_kill();
    let _ = child.wait().await;
    server.abort();
    let (at, what) =
        api.answered.lock().map_err(|_| anyhow::anyhow!("lock"))?.clone().ok_or_else(|| anyhow::anyhow!("{} never answered", bootstrap.display()))?;
    Ok((at - started, what))
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let lambda_dir = root.join("target/lambda");
    let runs = arg("--runs", 7).max(1);
    anyhow::ensure!(std::env::var("AWS_ENDPOINT_URL").is_ok(), "needs moto: export AWS_ENDPOINT_URL (./scripts/test or scripts/aws-local moto)");

    // The deployment's resources, on moto.
    let sdk = olbridge_aws::testing::config().await;
    let table = olbridge_aws::testing::fresh_table(&sdk).await;
    let (queue, _dlq) = olbridge_aws::testing::fresh_queues(&sdk, None).await;
    let secret = olbridge_aws::testing::fresh_secret(
        &sdk,
        &serde_json::json!({"B24_WEBHOOK_BASE": "https://example.bitrix24.com/rest/38005/coldstartcode/", "B24_APPLICATION_TOKEN": "token"}),
    )
    .await;
    let mut env: Vec<(String, String)> = ["AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"]
        .iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| ((*k).to_owned(), v)))
        .collect();
    env.extend([
        ("OLBRIDGE_TABLE".to_owned(), table),
        ("OLBRIDGE_QUEUE_URL".to_owned(), queue),
        ("OLBRIDGE_SECRET_ID".to_owned(), secret),
        ("B24_BOT_ID".to_owned(), "38007".to_owned()),
        ("B24_BOT_CLIENT_ID".to_owned(), "client".to_owned()),
        ("BOT_HTTP_URL".to_owned(), "http://127.0.0.1:9/bot".to_owned()),
    ]);
    let health = std::fs::read_to_string(root.join("events/apigw-v2-health.json"))?;
    let empty_batch = r#"{"Records":[]}"#.to_owned();
    let mut rows = Vec::new();
    for (bin, event) in [("olbridge-receiver", health), ("olbridge-worker", empty_batch)] {
        let bootstrap = lambda_dir.join(bin).join("bootstrap");
        anyhow::ensure!(bootstrap.exists(), "{} is missing: run `cargo lambda build --release` first", bootstrap.display());
        let size = std::fs::metadata(&bootstrap)?.len();
        let mut times = Vec::new();
        let mut last = String::new();
        for _ in 0..runs {
            let (t, what) = cold_start(&bootstrap, &event, &env).await?;
            times.push(t.as_secs_f64() * 1000.0);
            last = what;
        }
        times.sort_by(f64::total_cmp);
        anyhow::ensure!(last.starts_with("response"), "{bin} did not handle the event: {last}");
        rows.push(format!("| {bin} | {:.1} MB | {:.1} | {:.1} | {:.1} |", size as f64 / 1_048_576.0, times[times.len() / 2], times[0], times[times.len() - 1]));
    }
    let report = format!(
        "# Lambda cold start\n\nProcess start → first event answered to a local runtime API ({runs} starts each; the receiver answers a health check, the worker an empty batch; configuration, secret (moto) and SDK clients loaded first).\n\n| function | bootstrap size | median ms | min ms | max ms |\n|---|---|---|---|---|\n{}\n",
        rows.join("\n")
    );
    println!("{report}");
    let _ = std::fs::write(root.join("target/bench-coldstart.md"), &report);
    Ok(())
}
