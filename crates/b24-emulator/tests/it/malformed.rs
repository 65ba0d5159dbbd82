//! Random bodies, keys and query strings never crash the emulator: every answer is a Bitrix-style JSON envelope.

use crate::common::*;
use proptest::prelude::*;
use serde_json::Value;

fn assert_envelope(status: u16, body: &Value) {
    let ok = status == 200 && body.get("result").is_some();
    let err = status >= 400 && body.get("error").is_some_and(Value::is_string) && body.get("error_description").is_some();
    assert!(ok || err, "not an envelope: {status} {body}");
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

const METHODS: [&str; 8] = [
    "imbot.message.add",
    "im.dialog.messages.get",
    "batch",
    "crm.lead.list",
    "imopenlines.dialog.get",
    "imbot.v2.Event.get",
    "crm.timeline.comment.add",
    "imopenlines.bot.session.transfer",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_bodies_get_envelopes(
        method in prop::sample::select(&METHODS[..]),
        body in prop::collection::vec(any::<u8>(), 0..300),
        form in "[a-zA-Z\\[\\]%&=+.0-9 ]{0,80}",
        json_ct in any::<bool>(),
    ) {
        let rt = runtime();
        rt.block_on(async {
            let p = start().await;
            let ct = if json_ct { "application/json" } else { "application/x-www-form-urlencoded" };
            let (s, b) = p.raw(method, ct, &String::from_utf8_lossy(&body)).await;
            assert_envelope(s, &b);
            let (s, b) = p.raw(method, "application/x-www-form-urlencoded", &form).await;
            assert_envelope(s, &b);
            let url = format!("{}{method}?{form}", p.demo.webhook_url);
            let resp = p.http.get(url).send().await.expect("get");
            let s = resp.status().as_u16();
            let b: Value = resp.json().await.unwrap_or(Value::Null);
            assert_envelope(s, &b);
            // The server is still alive.
            assert_eq!(p.call("scope", serde_json::json!({})).await.0, 200);
        });
    }

    #[test]
    fn random_json_params_get_envelopes(
        method in prop::sample::select(&METHODS[..]),
        keys in prop::collection::vec("[A-Za-z_\\[\\]]{1,12}", 0..6),
        vals in prop::collection::vec(prop_oneof![Just(Value::Null), any::<bool>().prop_map(Value::from), any::<i64>().prop_map(Value::from), ".{0,20}".prop_map(Value::from), Just(serde_json::json!([])), Just(serde_json::json!({"a": [1, {"b": null}]}))], 0..6),
    ) {
        let rt = runtime();
        rt.block_on(async {
            let p = start().await;
            let params: serde_json::Map<String, Value> = keys.into_iter().zip(vals).collect();
            let (s, b) = p.call(method, Value::Object(params)).await;
            assert_envelope(s, &b);
        });
    }
}
