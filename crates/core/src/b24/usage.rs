//! REST calls spent per unit of work: a task-local counter that every HTTP request the client sends
//! adds to, read by the per-message record. The worker runs each turn inside [`scope`]; calls made
//! outside any scope (the pollers, the CRM timeline loop) are not counted anywhere. Retries count:
//! each is a request the portal's limit sees. A request that carries several commands (`batch`)
//! counts once, for the task that sent it.

use std::cell::Cell;
use std::future::Future;

tokio::task_local! {
    static CALLS: Cell<u32>;
}

/// Runs `f` with a fresh counter.
pub async fn scope<F: Future>(f: F) -> F::Output {
    CALLS.scope(Cell::new(0), f).await
}

/// Counts `n` requests in the current scope, if any.
pub fn add(n: u32) {
    let _ = CALLS.try_with(|c| c.set(c.get().saturating_add(n)));
}

/// Requests counted so far in the current scope (`None` outside any).
pub fn current() -> Option<u32> {
    CALLS.try_with(Cell::get).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_inside_a_scope_only() {
        add(1);
        assert_eq!(current(), None);
        let n = scope(async {
            add(2);
            add(1);
            current()
        })
        .await;
        assert_eq!(n, Some(3));
    }
}
