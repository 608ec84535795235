//! `fnmp_servicenow_export`: everything is in the library; see `exporter::run`.

fn main() {
    std::process::exit(exporter::run_on_stderr(std::env::args_os().collect()))
}
