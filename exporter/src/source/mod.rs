//! The FNMS operations database: where the export reads from.
//!
//! [`Database`] opens it (a SQLite file, or a `.sql` script loaded into memory), answers the
//! licence check and the database check, reads and records the differential baseline, and
//! streams each data type's records in FNMS key order without ever holding a data set in
//! memory ([`DataType`] knows the query and the field list of each).

mod data_type;
mod db;

pub(crate) use data_type::{DataType, FieldFormat};
pub(crate) use db::{Database, FieldValue, parse_timestamp};

use std::path::{Path, PathBuf};

/// Where the operations database comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// An existing SQLite database file, opened read-write and never created.
    File(PathBuf),
    /// A SQL script (`*.sql`) executed into an in-memory database, after the `schema.sql`
    /// in the same directory when there is one (and it is not the script itself).
    Script(PathBuf),
}

impl Source {
    pub(crate) fn from_path(path: PathBuf) -> Source {
        let is_sql = path
            .extension()
            .is_some_and(|ext| ext.eq_ignore_ascii_case("sql"));
        if is_sql {
            Source::Script(path)
        } else {
            Source::File(path)
        }
    }

    pub(crate) fn path(&self) -> &Path {
        match self {
            Source::File(path) | Source::Script(path) => path,
        }
    }
}
