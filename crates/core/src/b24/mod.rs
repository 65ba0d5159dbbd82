//! The Bitrix24 REST client and the [`crate::ports::Portal`] adapters over it.
//!
//! # Map
//! - [`webhook`]: the incoming-webhook base URL; the code in it is a secret and never printed.
//! - [`error`]: [`B24Error`], classified once as rate-limited / retryable / auth / permanent, keyed
//!   on Bitrix24's `error` code before the HTTP status.
//! - [`ratelimit`]: a client-side leaky bucket mirroring the portal's, with an optional priority
//!   that yields to replies when the budget is short.
//! - [`client`]: [`B24Client`]: envelopes, retries through [`crate::retry`], pagination, tracing.
//! - [`batch`]: up to 50 commands per request, PHP-style `cmd` encoding, per-command errors.
//! - [`im`], [`imbot`], [`imopenlines`], [`crm`]: typed calls with typed results; [`crm`] also
//!   holds [`crm::RestCrm`], the `CrmPortal` adapter.
//! - [`usage`]: the per-turn count of HTTP requests for the message record.
//! - [`de`]: tolerant deserializers for v1's string-or-number ids and `Y`/`N` flags.
//! - [`portal`]: [`BotPortal`] (a v1 Open Lines bot) and [`OperatorPortal`] (the service user);
//!   [`portal_v2`]: [`BotV2Portal`] (a Chatbots 2.0 Open Lines bot, also the fetch-mode event feed).
//! - [`feed`]: [`RestFeed`], what the pollers read (recent chats, messages in batches, the user's
//!   `im.v2` event log), at background priority.
//!
//! # Why a client-side limiter and retries both
//! The portal's bucket is shared by every tool calling it. The limiter keeps the bridge's own share
//! under it, so replies are not refused in the first place; retries with backoff (honouring the
//! portal's refusals, which also fill our bucket) cover the rest: other tools, a smaller plan, a
//! portal that misbehaves.

pub mod batch;
pub mod client;
pub mod coalesce;
pub mod crm;
pub mod de;
pub mod error;
pub mod feed;
pub mod im;
pub mod imbot;
pub mod imopenlines;
pub mod pace;
pub mod portal;
pub mod portal_v2;
pub mod ratelimit;
pub mod usage;
pub mod webhook;

pub use batch::{Batch, BatchResult};
pub use client::{B24Client, ClientOptions, Operating, Page, Replay};
pub use coalesce::CoalesceStats;
pub use error::{B24Error, ErrorKind};
pub use feed::RestFeed;
pub use portal::{BotPortal, OperatorPortal};
pub use portal_v2::BotV2Portal;
pub use ratelimit::{Lesson, Pace, Permit, Priority, RateLimiter, RatePlan};
pub use webhook::{WebhookBase, WebhookError};
