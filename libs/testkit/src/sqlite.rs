//! A SQLite database file in a private temporary directory, removed on drop.

use std::path::{Path, PathBuf};

/// A temporary directory holding one SQLite database.
#[derive(Debug)]
pub struct TempSqlite {
    dir: PathBuf,
    url: String,
}

impl TempSqlite {
    /// A new, empty directory under the system's temp dir; the database file itself is created
    /// by whoever connects (it does not exist yet).
    ///
    /// # Panics
    /// When the directory cannot be created.
    #[must_use]
    pub fn new() -> TempSqlite {
        let dir = std::env::temp_dir().join(format!("jt-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create temp dir {}: {e}", dir.display()));
        let url = format!("sqlite://{}", dir.join("data").join("jt.db").display());
        TempSqlite { dir, url }
    }

    /// `sqlite://<dir>/data/jt.db` (the `data` directory does not exist yet either).
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Default for TempSqlite {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TempSqlite {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
