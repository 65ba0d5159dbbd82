//! The CRM timeline loop: writes the comments turns left in the store's outbox
//! (`olbridge_core::usecase::crm::drain`), apart from the workers, so a slow or failing CRM never
//! holds up a reply. Comments wait in SQLite: whatever was pending when the process stopped (or was
//! killed) is written after the next start.

use std::sync::Arc;
use std::time::Duration;

use olbridge_core::ports::Clock;
use olbridge_core::usecase::crm::{CrmLink, DrainPolicy, drain};
use tokio::sync::watch;

/// How often the outbox is looked at when nothing was due.
const EVERY: Duration = Duration::from_millis(500);

pub(crate) async fn run(link: Arc<CrmLink>, clock: Arc<dyn Clock>, mut stop: watch::Receiver<bool>) {
    let policy = DrainPolicy::default();
    loop {
        let busy = match drain(link.portal().as_ref(), link.outbox().as_ref(), clock.now(), policy).await {
            Ok(done) => done.written + done.failed >= policy.batch,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the CRM timeline outbox");
                false
            }
        };
        if busy {
            tokio::task::yield_now().await;
            continue;
        }
        tokio::select! {
            () = tokio::time::sleep(EVERY) => {}
            _ = stop.changed() => return,
        }
    }
}
