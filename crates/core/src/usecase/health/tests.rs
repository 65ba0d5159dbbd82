use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use url::Url;

use super::*;
use crate::memory::MemoryStore;
use crate::ports::{QueueGauge, StoreResult};

struct Gauge(QueueGauge);

#[async_trait]
impl QueueAge for Gauge {
    async fn gauge(&self, _now: DateTime<Utc>) -> StoreResult<QueueGauge> {
        Ok(self.0)
    }
}

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + secs, 0).single().expect("valid")
}

#[tokio::test]
async fn the_store_check_writes_and_reads_back_twice_in_a_row() {
    let store = MemoryStore::new();
    for now in [at(0), at(1)] {
        let c = store_check(&store, now).await;
        assert_eq!((c.name.as_str(), c.status), ("store", Status::Ok), "{c:?}");
    }
    assert_eq!(store.get_value(PROBE_NAME).await.expect("get").expect("written").value, at(1).to_rfc3339());
}

#[tokio::test]
async fn the_queue_check_warns_and_fails_on_its_thresholds() {
    let (warn, fail) = (Duration::from_secs(300), Duration::from_secs(900));
    let status = |age: Option<i64>, pending: u64| async move {
        let g = Gauge(QueueGauge { pending: Some(pending), oldest_received_at: age.map(|a| at(-a)) });
        queue_check(&g, at(0), warn, fail).await.status
    };
    assert_eq!(status(None, 0).await, Status::Ok);
    assert_eq!(status(Some(10), 1).await, Status::Ok);
    assert_eq!(status(Some(301), 3).await, Status::Warn);
    assert_eq!(status(Some(901), 3).await, Status::Fail);
    let unknown = Gauge(QueueGauge { pending: Some(4), oldest_received_at: None });
    assert_eq!(queue_check(&unknown, at(0), warn, fail).await.status, Status::Ok, "SQS: the age is CloudWatch's to watch");
}

#[tokio::test]
async fn the_bot_check_fails_on_a_closed_port_and_not_set() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    let url = Url::parse(&format!("http://127.0.0.1:{port}/bot?token=secret-token")).expect("url");
    let c = bot_check(Some(&url), Duration::from_secs(5)).await;
    assert_eq!(c.status, Status::Fail, "{c:?}");
    assert!(!c.detail.contains("secret-token") && !c.detail.contains("/bot"), "no path or query in the detail: {}", c.detail);
    assert_eq!(bot_check(None, Duration::from_secs(1)).await.status, Status::Fail);
}

#[test]
fn the_report_is_the_worst_of_its_checks_and_serialises_as_documented() {
    let started = Instant::now();
    let r = HealthReport::new(vec![CheckResult::new("a", Status::Ok, "fine", started), CheckResult::new("b", Status::Warn, "hm", started)]);
    assert_eq!(r.status, Status::Warn);
    assert!(!r.failed());
    let json = serde_json::to_value(&r).expect("json");
    assert_eq!(json["status"], "warn");
    assert_eq!(json["checks"][1]["name"], "b");
    assert!(json["checks"][0]["elapsed_ms"].is_u64());
    assert!(HealthReport::new(vec![CheckResult::new("c", Status::Fail, "broken", started)]).failed());
}

#[test]
fn the_scopes_say_which_modes_a_webhook_allows() {
    let scopes = |s: &[&str]| s.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
    assert_eq!(modes_allowed(&scopes(&["im", "imopenlines"])), vec![Mode::Operator]);
    assert_eq!(modes_allowed(&scopes(&["crm", "im", "imbot", "imopenlines"])), vec![Mode::Operator, Mode::Push, Mode::Fetch]);
    assert!(modes_allowed(&scopes(&["im", "imbot"])).is_empty());
    assert_eq!(missing_scopes(Mode::Push, &scopes(&["im", "imopenlines"])), ["imbot"]);
}
