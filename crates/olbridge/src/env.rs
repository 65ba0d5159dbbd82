//! `.env` files, the way the client's scripts read them: `VAR=value`, `export VAR=value`, `#`
//! comment lines, blank lines, `'literal'` and `"escaped"` values, and unquoted values that may
//! contain spaces and end with a ` # comment`.
//!
//! # Why our own parser
//! The client's Python scripts (python-dotenv) accept `BOT_HTTP_AUTH=Bearer <token>   # optional`,
//! and so does the `.env` template in our README; dotenvy, the usual Rust crate, refuses that line,
//! and its parse errors quote the line they stumbled on, which in a `.env` is usually a secret
//! ("Error parsing line: 'Bearer …'"). The format is small, so we parse it here: every error names
//! the file, the 1-based line number and the variable when there is one, and never the value.
//!
//! # Why a `.env` others can read is refused
//! The file holds the webhook code (full REST access to the portal as its user), the bot's
//! credentials and the application token. A file group or others can read (`chmod 644`, what a
//! plain `cp` or an editor leaves with the usual umask) gives them to every account on the machine,
//! so [`read`] refuses it with the file named and the fix (`chmod 600 <file>`). Setting
//! `OLBRIDGE_ALLOW_INSECURE_ENV=1` in the real environment (not in the file: the file cannot vouch
//! for itself) reads it anyway, and the caller logs a warning at every start. Unix only: elsewhere
//! there are no mode bits to check.
//!
//! # Why nothing is written to the process environment
//! `std::env::set_var` is `unsafe` in edition 2024 (another thread may be reading the environment)
//! and the workspace forbids unsafe code. So [`read`] returns the file's variables as a map,
//! [`over_process_env`] lays the real environment over it (variables already set win, so a one-off
//! `BOT_HTTP_TIMEOUT_SEC=30 olbridge serve` works as expected), and `cli::run` builds the one
//! [`Config`](olbridge_core::config::Config) from the result with `Config::from_map`.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// The file name read from `--env-dir`.
pub const FILE_NAME: &str = ".env";

/// Why a `.env` file could not be used. Neither variant ever contains a value from the file.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// The file exists but cannot be read (permissions, not UTF-8, a directory).
    #[error("cannot read {}: {cause}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O failure (its text names no content).
        cause: std::io::Error,
    },
    /// Group or others may read the file.
    #[error(
        "{} can be read by other users (mode {mode:03o}): it holds the webhook code and the bot's credentials. \
         Fix: chmod 600 {} (or set OLBRIDGE_ALLOW_INSECURE_ENV=1 in the environment to run anyway)",
        path.display(),
        path.display()
    )]
    Insecure {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A line is not `VAR=value`.
    #[error("{}, line {}: {}", path.display(), error.line, error.describe())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// What is wrong, and where.
        error: SyntaxError,
    },
}

/// A line that is not `VAR=value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// 1-based line number.
    pub line: usize,
    /// The variable, when the line has a valid name before `=`.
    pub var: Option<String>,
    /// What is wrong.
    pub problem: Problem,
}

impl SyntaxError {
    fn describe(&self) -> String {
        match &self.var {
            Some(v) => format!("{v}: {}", self.problem),
            None => self.problem.to_string(),
        }
    }
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.describe())
    }
}

/// What can be wrong with a line. The texts say how to fix it without quoting the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// No `=` at all.
    NoEquals,
    /// The text before `=` is not a variable name (it is not shown: it might be a pasted secret).
    BadName,
    /// A quoted value whose closing quote is missing.
    Unterminated {
        /// `'` or `"`.
        quote: char,
    },
    /// Something other than a comment after the closing quote.
    AfterQuote,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoEquals => f.write_str("expected VAR=value, but the line has no `=`"),
            Self::BadName => f.write_str("the text before `=` is not a variable name (letters, digits, `_`, `.` or `-`, not starting with a digit)"),
            Self::Unterminated { quote: '\'' } => f.write_str("the single-quoted value has no closing `'` on this line (values cannot span lines)"),
            Self::Unterminated { .. } => f.write_str("the double-quoted value has no closing `\"` on this line (values cannot span lines)"),
            Self::AfterQuote => f.write_str("unexpected text after the closing quote (a comment needs `#`)"),
        }
    }
}

/// The variable that lets a `.env` others can read be used anyway (read from the real environment).
pub const ALLOW_INSECURE: &str = olbridge_core::config::vars::OLBRIDGE_ALLOW_INSECURE_ENV;

/// A `.env` file that was read.
#[derive(Debug, Default)]
pub struct EnvFile {
    /// Its variables.
    pub vars: HashMap<String, String>,
    /// `Some(mode)` when group or others can read it and [`ALLOW_INSECURE`] let it through: the
    /// caller warns once logging is up.
    pub insecure_mode: Option<u32>,
}

/// Whether the real environment sets [`ALLOW_INSECURE`] to `1` (or `true`).
pub fn insecure_allowed() -> bool {
    std::env::var_os(ALLOW_INSECURE).is_some_and(|v| matches!(v.to_str().map(str::trim), Some("1" | "true" | "yes")))
}

/// Reads `dir/.env`: `Ok(None)` when there is no such file. A file group or others can read is
/// refused unless `allow_insecure` (see the module's docs).
pub fn read(dir: &Path, allow_insecure: bool) -> Result<Option<EnvFile>, EnvError> {
    let path = dir.join(FILE_NAME);
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(cause) => return Err(EnvError::Read { path, cause }),
    };
    let insecure_mode = match readable_by_others(&file) {
        Ok(mode) => mode,
        Err(cause) => return Err(EnvError::Read { path, cause }),
    };
    if let Some(mode) = insecure_mode
        && !allow_insecure
    {
        return Err(EnvError::Insecure { path, mode });
    }
    let text = match std::io::read_to_string(file) {
        Ok(t) => t,
        Err(cause) => return Err(EnvError::Read { path, cause }),
    };
    match parse(&text) {
        Ok(vars) => Ok(Some(EnvFile { vars: vars.into_iter().collect(), insecure_mode })),
        Err(error) => Err(EnvError::Syntax { path, error }),
    }
}

/// The file's permission bits when group or others may read it.
#[cfg(unix)]
fn readable_by_others(file: &std::fs::File) -> std::io::Result<Option<u32>> {
    use std::os::unix::fs::PermissionsExt;
    let meta = file.metadata()?;
    if meta.is_dir() {
        return Err(std::io::Error::new(std::io::ErrorKind::IsADirectory, "is a directory"));
    }
    let mode = meta.permissions().mode() & 0o777;
    Ok((mode & 0o044 != 0).then_some(mode))
}

#[cfg(not(unix))]
fn readable_by_others(_file: &std::fs::File) -> std::io::Result<Option<u32>> {
    Ok(None)
}

/// Writes a `.env` file readable by its owner only (0600 from its creation, so there is no moment
/// at which others could read it). For the project's own tools and tests that write one.
pub fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        let mut f = options.open(path)?;
        // An existing file keeps its old mode through `open`: set it.
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        f.write_all(text.as_bytes())
    }
    #[cfg(not(unix))]
    {
        options.open(path)?.write_all(text.as_bytes())
    }
}

/// The file's variables with the process environment laid over them: a variable set in the real
/// environment (even to an empty value) wins. Variables whose name or value is not UTF-8 are
/// skipped (no setting of ours can use them).
pub fn over_process_env(file: HashMap<String, String>) -> HashMap<String, String> {
    let process = std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
    merge(file, process)
}

/// `file` with every variable of `process` laid over it.
pub fn merge(file: HashMap<String, String>, process: impl IntoIterator<Item = (String, String)>) -> HashMap<String, String> {
    let mut merged = file;
    merged.extend(process);
    merged
}

/// Parses the text of a `.env` file into its variables, in file order (a later line wins over an
/// earlier one with the same name when collected into a map).
pub fn parse(text: &str) -> Result<Vec<(String, String)>, SyntaxError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut vars = Vec::new();
    for (i, raw) in text.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw).trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fail = |var: Option<&str>, problem| SyntaxError { line: i + 1, var: var.map(str::to_owned), problem };
        let line = strip_export(line);
        let (name, rest) = line.split_once('=').ok_or_else(|| fail(None, Problem::NoEquals))?;
        let name = name.trim();
        if !is_name(name) {
            return Err(fail(None, Problem::BadName));
        }
        let value = value(rest).map_err(|p| fail(Some(name), p))?;
        vars.push((name.to_owned(), value));
    }
    Ok(vars)
}

/// `export VAR=value` → `VAR=value` (but `export=1` sets a variable named `export`).
fn strip_export(line: &str) -> &str {
    match line.strip_prefix("export") {
        Some(rest) if rest.starts_with([' ', '\t']) => rest.trim_start(),
        _ => line,
    }
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_') && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// The value after `=`: quoted (single: literal; double: `\n`, `\t`, `\r`, `\"`, `\\` escapes) or
/// unquoted (a `#` after whitespace starts a comment; the rest is trimmed).
fn value(rest: &str) -> Result<String, Problem> {
    let v = rest.trim_start();
    match v.chars().next() {
        Some('\'') => {
            let body = &v[1..];
            let end = body.find('\'').ok_or(Problem::Unterminated { quote: '\'' })?;
            after_quote(&body[end + 1..])?;
            Ok(body[..end].to_owned())
        }
        Some('"') => {
            let (value, after) = double_quoted(&v[1..])?;
            after_quote(after)?;
            Ok(value)
        }
        _ => Ok(without_comment(rest).trim().to_owned()),
    }
}

/// The unescaped body of a double-quoted value and the text after its closing quote.
fn double_quoted(body: &str) -> Result<(String, &str), Problem> {
    let mut out = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, &body[i + 1..])),
            '\\' => match chars.next().map(|(_, e)| e) {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some(e @ ('"' | '\\')) => out.push(e),
                // Unknown escapes stay as written, as python-dotenv keeps them.
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => break,
            },
            other => out.push(other),
        }
    }
    Err(Problem::Unterminated { quote: '"' })
}

fn after_quote(after: &str) -> Result<(), Problem> {
    let after = after.trim_start();
    if after.is_empty() || after.starts_with('#') { Ok(()) } else { Err(Problem::AfterQuote) }
}

/// Cuts an unquoted value at the first `#` that follows whitespace (`a#b` keeps its `#`).
fn without_comment(v: &str) -> &str {
    let mut prev_space = true;
    for (i, c) in v.char_indices() {
        if c == '#' && prev_space {
            return &v[..i];
        }
        prev_space = c == ' ' || c == '\t';
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "SECRETBOTTOKEN";

    fn one(line: &str) -> String {
        let vars = parse(line).unwrap();
        assert_eq!(vars.len(), 1, "{vars:?}");
        vars.into_iter().next().unwrap().1
    }

    /// The `.env` block of README's "Connect a real portal" section.
    fn readme_env_block() -> String {
        let readme = include_str!("../../../README.md");
        let section = readme.split("\n## Connect a real portal").nth(1).expect("the README has a \"Connect a real portal\" section");
        let section = section.split("\n## ").next().unwrap_or(section);
        let mut blocks = section.split("```").skip(1).step_by(2);
        let block = blocks.next().expect("the section has a fenced block");
        block.lines().skip(1).collect::<Vec<_>>().join("\n")
    }

    #[test]
    fn the_readme_env_template_parses_as_documented() {
        let vars: HashMap<String, String> = parse(&readme_env_block()).unwrap_or_else(|e| panic!("README's .env template: {e}")).into_iter().collect();
        assert_eq!(vars.get("BOT_HTTP_AUTH").map(String::as_str), Some("Bearer <token>"));
        assert_eq!(vars.get("B24_BUSINESS_PHONE").map(String::as_str), Some("+971501754133"));
        assert_eq!(vars.get("OLBRIDGE_PUBLIC_URL").map(String::as_str), Some("https://bridge.example.com"));
        assert!(vars.get("B24_WEBHOOK_BASE").is_some_and(|v| v.starts_with("https://") && v.ends_with('/')), "{vars:?}");
        assert!(vars.values().all(|v| !v.contains('#')), "a comment leaked into a value: {vars:?}");
        let config = olbridge_core::config::Config::from_map(&vars);
        assert!(config.is_ok(), "{:?}", config.err());
    }

    #[test]
    fn the_client_scripts_format_is_accepted() {
        let text = "\u{feff}# comment\n\n  export A=1\nB = two words   # a comment\r\nC='lit # \\n $x'\nD=\"l1\\nl2 \\\"q\\\" \\\\ \\d\"  # c\nE=\nF=a#b\nG= # only a comment\nexport=1\nH=\"\"\nA=again\n";
        let vars = parse(text).unwrap();
        let get = |k: &str| vars.iter().rev().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("A"), Some("again"));
        assert_eq!(get("B"), Some("two words"));
        assert_eq!(get("C"), Some("lit # \\n $x"));
        assert_eq!(get("D"), Some("l1\nl2 \"q\" \\ \\d"));
        assert_eq!(get("E"), Some(""));
        assert_eq!(get("F"), Some("a#b"));
        assert_eq!(get("G"), Some(""));
        assert_eq!(get("export"), Some("1"));
        assert_eq!(get("H"), Some(""));
        assert_eq!(one("BOT_HTTP_AUTH=Bearer abc\t# tab comment"), "Bearer abc");
    }

    #[test]
    fn every_error_names_file_line_and_variable_but_never_the_value() {
        let dir = tempfile::TempDir::new().unwrap();
        let cases: [(&str, usize, Option<&str>, &str); 6] = [
            ("OK=1\nBOT_HTTP_AUTH=\"Bearer SECRETBOTTOKEN", 2, Some("BOT_HTTP_AUTH"), "closing `\"`"),
            ("\n\nBOT_HTTP_AUTH='Bearer SECRETBOTTOKEN", 3, Some("BOT_HTTP_AUTH"), "closing `'`"),
            ("BOT_HMAC_SECRET='SECRETBOTTOKEN' SECRETBOTTOKEN", 1, Some("BOT_HMAC_SECRET"), "after the closing quote"),
            ("# a comment\nBearer SECRETBOTTOKEN", 2, None, "no `=`"),
            ("SECRETBOTTOKEN stray=SECRETBOTTOKEN", 1, None, "not a variable name"),
            ("export\n", 1, None, "no `=`"),
        ];
        for (text, line, var, says) in cases {
            write_private(&dir.path().join(FILE_NAME), text).unwrap();
            let message = read(dir.path(), false).unwrap_err().to_string();
            assert!(!message.contains(SECRET), "{message}");
            assert!(message.contains(&dir.path().join(FILE_NAME).display().to_string()), "{message}");
            assert!(message.contains(&format!("line {line}:")), "{message}");
            assert!(!message.contains("index"), "{message}");
            assert!(message.contains(says), "{message}");
            if let Some(var) = var {
                assert!(message.contains(&format!("{var}: ")), "{message}");
            }
        }
    }

    #[test]
    fn a_missing_file_is_no_error_and_an_unreadable_one_is() {
        let dir = tempfile::TempDir::new().unwrap();
        assert!(read(dir.path(), false).unwrap().is_none());
        std::fs::create_dir(dir.path().join(FILE_NAME)).unwrap();
        assert!(matches!(read(dir.path(), false), Err(EnvError::Read { .. })));
    }

    #[cfg(unix)]
    #[test]
    fn a_file_others_can_read_is_refused_with_the_fix_unless_allowed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join(FILE_NAME);
        write_private(&path, "BOT_HTTP_AUTH=Bearer SECRETBOTTOKEN\n").unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600, "written private");
        let ok = read(dir.path(), false).unwrap().unwrap();
        assert_eq!((ok.vars.get("BOT_HTTP_AUTH").map(String::as_str), ok.insecure_mode), (Some("Bearer SECRETBOTTOKEN"), None));
        for mode in [0o644, 0o640, 0o604] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = read(dir.path(), false).unwrap_err();
            let message = e.to_string();
            assert!(matches!(e, EnvError::Insecure { mode: m, .. } if m == mode), "{message}");
            assert!(message.contains(&format!("chmod 600 {}", path.display())) && message.contains("OLBRIDGE_ALLOW_INSECURE_ENV=1"), "{message}");
            assert!(!message.contains("SECRETBOTTOKEN"), "{message}");
            let allowed = read(dir.path(), true).unwrap().unwrap();
            assert_eq!(allowed.insecure_mode, Some(mode));
            assert!(allowed.vars.contains_key("BOT_HTTP_AUTH"));
        }
        // Owner-only modes other than 600 are fine; rewriting privately fixes an open file.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert!(read(dir.path(), false).is_ok());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&path, "A=1\n").unwrap();
        assert_eq!(read(dir.path(), false).unwrap().unwrap().vars.get("A").map(String::as_str), Some("1"));
    }

    #[test]
    fn the_real_environment_wins_over_the_file() {
        let file: HashMap<String, String> = [("A", "file"), ("B", "file")].into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
        let merged = merge(file, [("A".to_owned(), String::new()), ("C".to_owned(), "env".to_owned())]);
        assert_eq!(merged.get("A").map(String::as_str), Some(""));
        assert_eq!(merged.get("B").map(String::as_str), Some("file"));
        assert_eq!(merged.get("C").map(String::as_str), Some("env"));
    }
}
