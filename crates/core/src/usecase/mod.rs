//! Use cases: the entry points shared by the local runner and the Lambda functions. Each takes its
//! dependencies as ports and an input; none reads configuration or the clock directly.

pub mod process;
pub mod receive;
