//! The harness benches' command line: `--name value` options after `cargo bench ... --`.

use std::str::FromStr;

/// An option that is malformed, named in the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgError(String);

impl std::fmt::Display for ArgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ArgError {}

/// The value after `name`, if given.
pub fn value(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

/// A number option, `default` when not given.
pub fn num<T: FromStr>(args: &[String], name: &str, default: T) -> Result<T, ArgError> {
    match value(args, name) {
        Some(v) => v.parse().map_err(|_| ArgError(format!("{name}: cannot parse {v:?}"))),
        None => Ok(default),
    }
}

/// A `LO,HI` range option, `default` when not given.
pub fn range(args: &[String], name: &str, default: (u64, u64)) -> Result<(u64, u64), ArgError> {
    let Some(v) = value(args, name) else { return Ok(default) };
    let parse = |s: &str| s.parse().map_err(|_| ArgError(format!("{name}: cannot parse {v:?} as LO,HI")));
    let (lo, hi) = v.split_once(',').ok_or_else(|| ArgError(format!("{name}: LO,HI")))?;
    Ok((parse(lo)?, parse(hi)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_read_after_their_names_with_defaults() {
        let args: Vec<String> = ["--seed", "7", "--gap-ms", "400,2000", "--bad", "x"].iter().map(|s| (*s).to_owned()).collect();
        assert_eq!(num(&args, "--seed", 1_u64), Ok(7));
        assert_eq!(num(&args, "--chats", 10_usize), Ok(10));
        assert_eq!(range(&args, "--gap-ms", (1, 2)), Ok((400, 2000)));
        assert!(num::<u64>(&args, "--bad", 0).is_err());
        assert!(range(&args, "--bad", (0, 0)).is_err());
    }
}
