//! What the HTTP handlers, the dispatcher and the [`crate::Emulator`] handle share.

use crate::clock::Clock;
use crate::config::EmulatorConfig;
use crate::events::Idle;
use crate::faults::Faults;
use crate::record::Recorder;
use crate::rest::operating::Operating;
use crate::rest::ratelimit::Bucket;
use crate::state::Portal;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

#[derive(Debug)]
pub(crate) struct Shared {
    pub portal: Mutex<Portal>,
    pub recorder: Recorder,
    pub faults: Faults,
    pub bucket: Mutex<Bucket>,
    pub operating: Mutex<Operating>,
    pub clock: Arc<Clock>,
    pub idle: Arc<Idle>,
    pub config: EmulatorConfig,
    pub base_url: String,
}

impl Shared {
    /// Locks the portal. A panic while locked cannot leave it half-updated in a way worse than the panic itself,
    /// so poisoning is ignored rather than turned into more panics.
    pub(crate) fn portal(&self) -> MutexGuard<'_, Portal> {
        self.portal.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn bucket(&self) -> MutexGuard<'_, Bucket> {
        self.bucket.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn operating(&self) -> MutexGuard<'_, Operating> {
        self.operating.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
