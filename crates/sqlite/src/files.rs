//! Files of the store, created private: the directory `0700`, files `0600` (Unix). Elsewhere the
//! platform's defaults apply.

use std::fs::File;
use std::io;
use std::path::Path;

/// Creates `dir` (and missing parents) with mode `0700`. An existing directory that others can
/// read is not changed, but logged: it may be the operator's own (a home directory).
pub(crate) fn create_private_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        if !dir.exists() {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        }
        let mode = std::fs::metadata(dir)?.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(dir = %dir.display(), mode = format!("{:o}", mode & 0o777), "the data directory is readable by other users; it holds phone numbers and conversations (chmod 700 it)");
        }
        Ok(())
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir)
    }
}

/// Opens (creating if needed) a file of the store with mode `0600`, narrowing an existing file's
/// wider mode.
pub(crate) fn open_private(path: &Path) -> io::Result<File> {
    let mut options = File::options();
    options.create(true).truncate(false).read(true).write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        let file = options.open(path)?;
        let mut perms = file.metadata()?.permissions();
        if perms.mode() & 0o077 != 0 {
            perms.set_mode(0o600);
            file.set_permissions(perms)?;
        }
        Ok(file)
    }
    #[cfg(not(unix))]
    {
        options.open(path)
    }
}
