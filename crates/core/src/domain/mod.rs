//! The pure domain: identifiers, the message model, events, turns, profiles and the rules that
//! decide what to do, and the KPI definitions (`kpi`). Nothing here does I/O.

pub mod allowlist;
pub mod escalation;
pub mod event;
pub mod faq;
pub mod form;
pub mod history;
pub mod ids;
pub mod kpi;
pub mod message;
pub mod parse;
pub mod profile;
pub mod secret;
pub mod split;
pub mod stats;
pub mod turn;
pub mod window;
