//! The `.env` habit of the client's scripts: `VAR=value`, `export VAR=value`, `#` comments, read
//! from the working directory. Variables already set in the environment win over the file, so a
//! one-off `BOT_HTTP_TIMEOUT_SEC=30 olbridge serve` works as expected.

use std::path::Path;

/// Loads `.env` from `dir` if present; returns whether a file was read. A malformed file is an
/// error naming the line, not a silent partial load.
pub fn load_dotenv(dir: &Path) -> anyhow::Result<bool> {
    let path = dir.join(".env");
    if !path.exists() {
        return Ok(false);
    }
    match dotenvy::from_path(&path) {
        Ok(()) => Ok(true),
        Err(e) => Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
    }
}
