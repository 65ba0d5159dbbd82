//! The harness's report: what was injected, what the customers saw, and the costs, as JSON and
//! Markdown.

use std::collections::BTreeMap;

use serde::Serialize;

use b24_emulator::Emulator;

use crate::Verdict;

/// One run's figures.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// What ran the bridge: `local` (a real `olbridge serve`, killed with SIGKILL) or `aws` (the
    /// Lambda handlers in process against moto; a kill is a cancelled worker invocation).
    pub runtime: String,
    /// The seed.
    pub seed: u64,
    /// Customers.
    pub chats: usize,
    /// Messages per customer.
    pub messages: usize,
    /// Kills done: SIGKILL + restart cycles (local), worker invocations killed (aws).
    pub kills: usize,
    /// Figures of one runtime only, by name (the AWS path's kinds of kill, redeliveries, ...).
    pub counters: BTreeMap<String, usize>,
    /// Bot requests answered with a fault (timeout, 500, garbage, slow).
    pub bot_faults: usize,
    /// Bot requests received.
    pub bot_requests: usize,
    /// Portal fault episodes injected, by kind.
    pub portal_faults: BTreeMap<String, usize>,
    /// `ONIMBOTMESSAGEADD` deliveries attempted, and how many did not reach the bridge (dropped,
    /// or sent while it was dead).
    pub deliveries: usize,
    /// Of which not delivered.
    pub deliveries_lost: usize,
    /// What the inboxes show.
    pub verdict: Verdict,
    /// Whether an answer out of order because its event never reached the bridge passes.
    pub late_order_ok: bool,
    /// Latency percentiles (customer write -> answer seen in the inbox, polled every 25 ms), ms.
    pub latency_ms: Percentiles,
    /// HTTP requests to the portal (a batch counts once).
    pub rest_requests: usize,
    /// Requests per bot message in the inboxes.
    pub rest_per_answer: f64,
    /// Calls refused with `QUERY_LIMIT_EXCEEDED` (injected 503 storms included).
    pub query_limit_exceeded: usize,
    /// Writing and killing, s.
    pub load_s: f64,
    /// Until the verdict, s.
    pub total_s: f64,
}

/// p50/p95/p99/max.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 95th.
    pub p95: f64,
    /// 99th.
    pub p99: f64,
    /// Max.
    pub max: f64,
}

fn percentiles(mut v: Vec<f64>) -> Percentiles {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v.get(((v.len() as f64 * q).ceil() as usize).saturating_sub(1)).copied().unwrap_or(f64::NAN);
    Percentiles { p50: at(0.50), p95: at(0.95), p99: at(0.99), max: v.last().copied().unwrap_or(f64::NAN) }
}

/// What a run knows at its end, besides the portal's own record: the parts of a [`Report`].
#[derive(Debug, Clone, Default)]
pub struct RunFigures {
    /// `local` or `aws`.
    pub runtime: &'static str,
    /// The seed.
    pub seed: u64,
    /// Customers.
    pub chats: usize,
    /// Messages per customer.
    pub messages: usize,
    /// Whether an answer out of order because its event never reached the bridge passes.
    pub late_order_ok: bool,
    /// Kills done.
    pub kills: usize,
    /// Runtime-specific figures.
    pub counters: BTreeMap<String, usize>,
    /// Bot requests received, and how many were answered with a fault.
    pub bot_requests: usize,
    /// Of which faults.
    pub bot_faults: usize,
    /// Portal fault episodes injected, by kind.
    pub portal_faults: BTreeMap<String, usize>,
    /// Writing and killing, s.
    pub load_s: f64,
    /// Until the verdict, s.
    pub total_s: f64,
}

impl Report {
    /// The report of a run on `emulator` (its REST calls and deliveries are counted here).
    pub fn from_run(run: RunFigures, emulator: &Emulator, verdict: Verdict) -> Self {
        let calls = emulator.calls();
        let rest_requests = calls.iter().filter(|c| !c.in_batch).count();
        let query_limit_exceeded = calls.iter().filter(|c| c.error.as_deref() == Some("QUERY_LIMIT_EXCEEDED")).count();
        let deliveries: Vec<_> = emulator.deliveries().into_iter().filter(|d| d.event == "ONIMBOTMESSAGEADD").collect();
        let answers = verdict.bot_messages.max(1);
        Self {
            runtime: run.runtime.to_owned(),
            seed: run.seed,
            chats: run.chats,
            messages: run.messages,
            kills: run.kills,
            counters: run.counters,
            bot_faults: run.bot_faults,
            bot_requests: run.bot_requests,
            portal_faults: run.portal_faults,
            deliveries: deliveries.len(),
            deliveries_lost: deliveries.iter().filter(|d| !d.delivered()).count(),
            latency_ms: percentiles(verdict.latencies_ms.clone()),
            verdict,
            late_order_ok: run.late_order_ok,
            rest_requests,
            rest_per_answer: rest_requests as f64 / answers as f64,
            query_limit_exceeded,
            load_s: run.load_s,
            total_s: run.total_s,
        }
    }

    /// No message lost, duplicated, out of order or misrouted (see [`Verdict::ok`]).
    pub fn ok(&self) -> bool {
        self.verdict.ok(self.late_order_ok)
    }

    /// The report in Markdown; `command` is how it was produced.
    pub fn markdown(&self, command: &str) -> String {
        let v = &self.verdict;
        let l = &self.latency_ms;
        let faults: Vec<String> = self.portal_faults.iter().map(|(k, n)| format!("{n} × {k}")).collect();
        let kills = if self.runtime == "aws" { "worker invocations killed" } else { "SIGKILL + restart" };
        let mut out = format!(
            "# Fault and load harness ({}): {}\n\n`{command}`\n\n\
             | | |\n|---|---|\n\
             | seed | {} |\n| chats × messages | {} × {} = {} written |\n| {kills} | {} |\n\
             | portal fault episodes | {} |\n| bot requests (of which faults) | {} ({}) |\n\
             | `ONIMBOTMESSAGEADD` deliveries (not delivered: dropped or to a dead bridge) | {} ({}) |\n\
             | **lost** | **{}** |\n| **duplicated** | **{}** |\n| **out of order** (of which the event never reached the bridge) | **{}** ({}) |\n| misrouted | {} |\n\
             | answered | {} |\n| handed off (chats) | {} ({}) |\n\
             | latency p50 / p95 / p99 / max | {:.0} / {:.0} / {:.0} / {:.0} ms |\n\
             | REST requests (per bot message) | {} ({:.2}) |\n| `QUERY_LIMIT_EXCEEDED` seen | {} |\n\
             | load / total time | {:.1} s / {:.1} s |\n",
            self.runtime,
            if self.ok() { "PASS" } else { "FAIL" },
            self.seed,
            self.chats,
            self.messages,
            v.written,
            self.kills,
            if faults.is_empty() { "none".to_owned() } else { faults.join(", ") },
            self.bot_requests,
            self.bot_faults,
            self.deliveries,
            self.deliveries_lost,
            v.lost,
            v.duplicated,
            v.out_of_order + v.out_of_order_late,
            v.out_of_order_late,
            v.misrouted,
            v.answered,
            v.handed_off,
            v.handed_off_chats,
            l.p50,
            l.p95,
            l.p99,
            l.max,
            self.rest_requests,
            self.rest_per_answer,
            self.query_limit_exceeded,
            self.load_s,
            self.total_s,
        );
        for (name, n) in &self.counters {
            out.push_str(&format!("| {name} | {n} |\n"));
        }
        for e in &v.examples {
            out.push_str(&format!("\n- {e}"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::percentiles;

    #[test]
    fn percentiles_are_nearest_rank() {
        let p = percentiles((1..=100).map(f64::from).collect());
        assert_eq!((p.p50, p.p95, p.p99, p.max), (50.0, 95.0, 99.0, 100.0));
    }
}
