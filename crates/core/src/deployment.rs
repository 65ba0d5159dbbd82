//! What each Lambda function of the AWS deployment reads from its environment, declared once: the
//! CDK stack (infra/cdk) gives each function exactly these variables, and its tests check them
//! against `infra/functions.json`, which a test here keeps equal to this table. The names are
//! [`crate::config::vars`]; nothing here is read at run time.

use serde::Serialize;

use crate::config::vars::*;

/// Where a variable's value comes from in the deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// The function's environment (set by the stack from its properties).
    Env,
    /// The one secret (`OLBRIDGE_SECRET_ID`): a key of its JSON value. Never in the environment.
    Secret,
}

/// One Lambda function's inputs.
#[derive(Debug, Clone)]
pub struct Function {
    /// The function's name in the stack and the binary (`olbridge-<name>`).
    pub name: &'static str,
    /// Variables the function reads, with where they come from.
    pub vars: &'static [(&'static str, Origin)],
}

use Origin::{Env, Secret};

/// The variables every function built on the shared configuration reads.
const COMMON: &[(&str, Origin)] = &[(OLBRIDGE_TABLE, Env), (OLBRIDGE_SECRET_ID, Env), (OLBRIDGE_SECRET_TTL_SEC, Env), (B24_WEBHOOK_BASE, Secret)];

/// The deployment's functions.
pub const FUNCTIONS: &[Function] = &[
    Function {
        name: "receiver",
        vars: &[
            (OLBRIDGE_TABLE, Env),
            (OLBRIDGE_QUEUE_URL, Env),
            (OLBRIDGE_SECRET_ID, Env),
            (OLBRIDGE_SECRET_TTL_SEC, Env),
            (B24_WEBHOOK_BASE, Secret),
            (B24_APPLICATION_TOKEN, Secret),
            (B24_BOT_ID, Env),
            (B24_BOT_CLIENT_ID, Env),
            (OLBRIDGE_BOT_API, Env),
            (B24_MEMBER_ID, Env),
            (OLBRIDGE_TS_WINDOW_SEC, Env),
            (OLBRIDGE_MAX_BODY_BYTES, Env),
            (OLBRIDGE_ALLOWED_CIDRS, Env),
        ],
    },
    Function {
        name: "worker",
        vars: &[
            (OLBRIDGE_TABLE, Env),
            (OLBRIDGE_QUEUE_URL, Env),
            (OLBRIDGE_SECRET_ID, Env),
            (OLBRIDGE_SECRET_TTL_SEC, Env),
            (B24_WEBHOOK_BASE, Secret),
            (BOT_HTTP_AUTH, Secret),
            (BOT_HMAC_SECRET, Secret),
            (BOT_HTTP_URL, Env),
            (BOT_HTTP_TIMEOUT_SEC, Env),
            (B24_BUSINESS_PHONE, Env),
            (B24_BOT_ID, Env),
            (B24_BOT_CLIENT_ID, Env),
            (OLBRIDGE_BOT_API, Env),
            (OLBRIDGE_MODE, Env),
            (B24_TRANSFER_TO, Env),
            (B24_MEMBER_ID, Env),
            (B24_RATE_PER_SEC, Env),
            (B24_RATE_BURST, Env),
            (OLBRIDGE_ESCALATION_PHRASES, Env),
            (OLBRIDGE_ESCALATION_WORDS, Env),
            (OLBRIDGE_HANDOFF_MESSAGE, Env),
            (OLBRIDGE_FALLBACK_MESSAGE, Env),
            (OLBRIDGE_BOT_MAX_ATTEMPTS, Env),
            (OLBRIDGE_BOT_RETRY_BUDGET_SEC, Env),
            (OLBRIDGE_QUEUE_MAX_ATTEMPTS, Env),
            (OLBRIDGE_TRANSIENT_PATIENCE_SEC, Env),
            (OLBRIDGE_PROFILE_RETENTION_DAYS, Env),
            (OLBRIDGE_HISTORY_RETENTION_DAYS, Env),
            (OLBRIDGE_TURN_LOG_RETENTION_DAYS, Env),
            (OLBRIDGE_PROFILE_MAX_BYTES, Env),
            (OLBRIDGE_HISTORY_TEXT_MAX_CHARS, Env),
            (OLBRIDGE_WINDOW_CHECK, Env),
            (OLBRIDGE_WINDOW_MARGIN_SEC, Env),
            (OLBRIDGE_FAQ_CACHE_TTL_SEC, Env),
            (OLBRIDGE_RATE_LIMIT_MESSAGES, Env),
            (OLBRIDGE_RATE_LIMIT_WINDOW_SEC, Env),
            (OLBRIDGE_RATE_LIMIT_NOTICE, Env),
            (OLBRIDGE_DAILY_BOT_CALLS, Env),
            (OLBRIDGE_CRM_UNBOUND, Env),
            (OLBRIDGE_CRM_TIMELINE, Env),
            (OLBRIDGE_CRM_TIMELINE_QUIET_SEC, Env),
        ],
    },
    Function {
        name: "poller",
        vars: &[
            (OLBRIDGE_TABLE, Env),
            (OLBRIDGE_QUEUE_URL, Env),
            (OLBRIDGE_SECRET_ID, Env),
            (OLBRIDGE_SECRET_TTL_SEC, Env),
            (B24_WEBHOOK_BASE, Secret),
            (OLBRIDGE_MODE, Env),
            (B24_BOT_ID, Env),
            (B24_BOT_CLIENT_ID, Env),
            (OLBRIDGE_BOT_API, Env),
            (B24_MEMBER_ID, Env),
            (B24_POLL_SEC, Env),
            (OLBRIDGE_POLL_SOURCE, Env),
            (OLBRIDGE_SWEEP_SEC, Env),
            (OLBRIDGE_RECONCILE_SEC, Env),
            (OLBRIDGE_RECONCILE_GRACE_SEC, Env),
            (OLBRIDGE_BACKFILL_SEC, Env),
            (B24_OPERATING_LIMIT_SEC, Env),
            (B24_RATE_PER_SEC, Env),
            (B24_RATE_BURST, Env),
            // The CRM timeline pass (functions/poller/src/work.rs).
            (OLBRIDGE_CRM_TIMELINE, Env),
            // The health and canary invocations (functions/poller/src/probe.rs).
            (BOT_HTTP_URL, Env),
            (OLBRIDGE_FALLBACK_MESSAGE, Env),
            (OLBRIDGE_HEALTH_QUEUE_WARN_SEC, Env),
            (OLBRIDGE_HEALTH_QUEUE_FAIL_SEC, Env),
            (OLBRIDGE_CANARY_DIALOG, Env),
            (OLBRIDGE_CANARY_TIMEOUT_SEC, Env),
        ],
    },
    Function { name: "rotator", vars: &[(OLBRIDGE_SECRET_ID, Env)] },
];

/// The shared configuration's inputs every function has (for functions added later).
pub fn common() -> &'static [(&'static str, Origin)] {
    COMMON
}

/// The table as JSON, as `infra/functions.json` holds it.
pub fn to_json() -> serde_json::Value {
    serde_json::json!({
        "_about": "What each Lambda function reads from its environment or the secret. Generated from crates/core/src/deployment.rs; a test fails when they differ (run `OLBRIDGE_BLESS=1 cargo test -p olbridge-core deployment` to rewrite this file).",
        "functions": FUNCTIONS.iter().map(|f| serde_json::json!({
            "name": f.name,
            "vars": f.vars.iter().map(|(name, origin)| serde_json::json!({"name": name, "from": origin})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

/// The keys of the one secret (infra/resources.json lists the same; `olbridge-aws` reads it).
pub const SECRET_KEYS: &[&str] = &[B24_WEBHOOK_BASE, B24_APPLICATION_TOKEN, BOT_HTTP_AUTH, BOT_HMAC_SECRET];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn infra_functions_json_is_this_table() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra/functions.json");
        let want = serde_json::to_string_pretty(&to_json()).unwrap_or_default() + "\n";
        if std::env::var_os("OLBRIDGE_BLESS").is_some() {
            let _ = std::fs::write(&path, &want);
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(have, want, "infra/functions.json is stale: run `OLBRIDGE_BLESS=1 cargo test -p olbridge-core deployment`");
    }

    #[test]
    fn the_secrets_keys_are_the_ones_the_resources_define() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra/resources.json");
        let spec: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_default()).unwrap_or_default();
        let keys: Vec<&str> = spec["secret"]["keys"].as_array().map(|a| a.iter().filter_map(|k| k.as_str()).collect()).unwrap_or_default();
        assert_eq!(keys, SECRET_KEYS);
    }

    #[test]
    fn every_variable_is_a_known_name_and_secrets_are_the_secrets_keys() {
        let known = crate::config::vars::ALL;
        for f in FUNCTIONS {
            for (name, origin) in f.vars {
                assert!(known.contains(name), "{}: {name} is not a configuration variable", f.name);
                if *origin == Origin::Secret {
                    assert!(SECRET_KEYS.contains(name), "{}: {name} is not a key of the secret", f.name);
                }
            }
        }
    }
}
