//! Standard output for the commands.
//!
//! `olbridge stats | head -3` closes the pipe while we are still printing, and `println!` panics
//! on a closed pipe. Every command prints through [`outln!`](crate::outln) instead, which returns
//! [`OutputError::Closed`] when the reader has gone; `main` turns that into a quiet, successful
//! exit, as Unix tools do: the reader got what it asked for.

use std::fmt;
use std::io::Write as _;

/// Why a line could not be printed.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The reader closed the pipe (`| head`): stop printing and exit quietly.
    #[error("standard output was closed by its reader")]
    Closed,
    /// Any other write failure (a full disk behind a redirect, …).
    #[error("cannot write to standard output: {0}")]
    Failed(std::io::Error),
}

impl From<std::io::Error> for OutputError {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::BrokenPipe { Self::Closed } else { Self::Failed(e) }
    }
}

/// Writes `args` and a newline to standard output.
pub fn write_line(args: fmt::Arguments<'_>) -> Result<(), OutputError> {
    let mut out = std::io::stdout().lock();
    out.write_fmt(args)?;
    out.write_all(b"\n")?;
    Ok(())
}

/// Writes `args` without a newline and flushes, so a prompt shows before the input is read.
pub fn write_flush(args: fmt::Arguments<'_>) -> Result<(), OutputError> {
    let mut out = std::io::stdout().lock();
    out.write_fmt(args)?;
    out.flush()?;
    Ok(())
}

/// `println!` that returns `Result<(), OutputError>` instead of panicking on a closed pipe.
#[macro_export]
macro_rules! outln {
    () => {
        $crate::output::write_line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::output::write_line(format_args!($($arg)*))
    };
}
