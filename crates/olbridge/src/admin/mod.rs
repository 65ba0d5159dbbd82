//! Admin commands: registering the bot, checking a setup (doctor, doctor --json, the canary), the terminal tools the client's scripts
//! used to provide, and the local store's reports.

pub mod canary;
pub mod doctor;
pub mod doctor_v2;
pub mod kpi;
pub mod local;
pub mod register;
pub mod report;
pub mod tty;
