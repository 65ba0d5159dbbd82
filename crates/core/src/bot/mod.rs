//! The bot's HTTP adapter: the contract on the wire (`docs/bot-contract.md`), request signing and
//! the client. The port and its types ([`crate::ports::Bot`], [`crate::ports::BotRequest`],
//! [`crate::ports::BotAnswer`], [`crate::ports::BotError`]) live beside the other ports.
//!
//! The request is a superset of the two shapes the client's existing bot knows, so it works
//! unchanged; every reply shape it has ever produced is accepted.

pub mod contract;
pub mod http;
pub mod sign;
