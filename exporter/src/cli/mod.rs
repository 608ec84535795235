//! The command line: the documented single-dash spellings of `fnmp_servicenow_export.exe`
//! and the GNU-style long options they stand for.
//!
//! Clap cannot parse `-changesPeriod -7` (single-dash long names with negative values), so
//! [`translate_documented_options`] first rewrites the documented spellings into long options;
//! [`Cli`] then parses and documents everything, so `--help` has a single source.

mod args;
mod translate;

pub(crate) use args::Cli;
pub(crate) use translate::translate_documented_options;
