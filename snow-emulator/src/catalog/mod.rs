//! The catalog: every table, column, choice list, import type and transform map the
//! emulator knows, read from TOML files an administrator can change (as on a real instance,
//! where these are records too). Nothing downstream names a target table in Rust: the
//! store, the Table API and the transform engine all work from a [`Catalog`].

mod files;
mod load;
mod model;
mod records;

pub use load::{load_dir, load_embedded};
pub use model::*;
pub use records::{RecordRef, SeedRecord};
