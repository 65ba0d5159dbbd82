//! The dependency rules (STYLE.md): no Lambda links SQLite or the emulator, and the local runner
//! never links the AWS SDK — checked on the resolved dependency graph (`cargo metadata`), following
//! normal and build dependencies only (dev-dependencies such as this test's emulator are not in
//! a deployed binary).

use std::collections::{BTreeSet, HashMap};
use std::process::Command;

use serde_json::Value;

/// Every package reachable from `root` without dev-dependencies.
fn reachable(metadata: &Value, root: &str) -> BTreeSet<String> {
    let packages: HashMap<&str, &str> =
        metadata["packages"].as_array().expect("packages").iter().map(|p| (p["id"].as_str().expect("id"), p["name"].as_str().expect("name"))).collect();
    let nodes: HashMap<&str, &Value> = metadata["resolve"]["nodes"].as_array().expect("nodes").iter().map(|n| (n["id"].as_str().expect("id"), n)).collect();
    let start = packages.iter().find(|(_, name)| **name == root).map(|(id, _)| *id).unwrap_or_else(|| panic!("no package {root}"));
    let mut seen = BTreeSet::new();
    let mut stack = vec![start];
    while let Some(id) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        for dep in nodes[id]["deps"].as_array().expect("deps") {
            let kinds = dep["dep_kinds"].as_array().expect("dep_kinds");
            if kinds.iter().any(|k| k["kind"].as_str() != Some("dev")) {
                stack.push(dep["pkg"].as_str().expect("pkg"));
            }
        }
    }
    seen.into_iter().map(|id| packages[id].to_owned()).collect()
}

#[test]
fn no_lambda_links_sqlite_or_the_emulator_and_the_runner_links_no_aws_sdk() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo).args(["metadata", "--format-version", "1"]).current_dir(env!("CARGO_MANIFEST_DIR")).output().expect("cargo metadata runs");
    assert!(output.status.success(), "cargo metadata failed: {}", String::from_utf8_lossy(&output.stderr));
    let metadata: Value = serde_json::from_slice(&output.stdout).expect("metadata JSON");

    let lambdas: Vec<String> = metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .filter(|p| p["manifest_path"].as_str().is_some_and(|m| m.contains("/functions/")))
        .map(|p| p["name"].as_str().expect("name").to_owned())
        .collect();
    for expected in ["olbridge-receiver", "olbridge-worker", "olbridge-poller", "olbridge-rotator"] {
        assert!(lambdas.iter().any(|l| l == expected), "{expected} is not among {lambdas:?}");
    }
    for lambda in &lambdas {
        let deps = reachable(&metadata, lambda);
        assert!(deps.contains("olbridge-core"), "the walk is wrong: {lambda} -> {deps:?}");
        let forbidden: Vec<&String> =
            deps.iter().filter(|d| ["rusqlite", "libsqlite3-sys", "olbridge-sqlite", "b24-emulator", "olbridge"].contains(&d.as_str())).collect();
        assert!(forbidden.is_empty(), "{lambda} links {forbidden:?}");
    }

    let runner = reachable(&metadata, "olbridge");
    assert!(runner.contains("rusqlite"), "the walk is wrong: olbridge -> {runner:?}");
    let aws: Vec<&String> =
        runner.iter().filter(|d| d.starts_with("aws-sdk-") || d.as_str() == "aws-config" || d.starts_with("lambda_") || d.as_str() == "olbridge-aws").collect();
    assert!(aws.is_empty(), "the local runner links {aws:?}");
}
