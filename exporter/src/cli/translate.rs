//! Rewrites the documented option spellings (`-url URL`, `-changesPeriod -7`,
//! `-WithHardwareInventory false`, …) into the long options clap parses.
//!
//! Rules:
//! - a documented name is recognised case-insensitively, with one leading dash, optionally
//!   with an inline value (`-changes=false`);
//! - an option that needs a value takes the next argument whatever it looks like (so
//!   `-changesPeriod -7` works), joined as `--changes-period=-7`;
//! - a Boolean option takes the next argument only if it does not start with `-`; alone it
//!   means `true` (`-connectionTest` = `-connectionTest true`);
//! - the value of a long option (`--token -abc`) and everything after `--` are left alone.

use std::ffi::OsString;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Takes {
    /// A mandatory value: the next argument, whatever it is.
    Value,
    /// An optional `true`/`false`.
    Boolean,
    /// No value.
    Nothing,
}

/// One documented spelling and the long option it stands for.
struct Spelling {
    documented: String,
    long: String,
    takes: Takes,
}

/// How a clap argument takes its value.
fn takes(arg: &clap::Arg) -> Takes {
    if !arg.get_action().takes_values() {
        Takes::Nothing
    } else if arg.get_num_args().is_some_and(|n| n.min_values() == 0) {
        Takes::Boolean
    } else {
        Takes::Value
    }
}

/// The documented spelling an option's help names in brackets (`[-changesPeriod]`,
/// `[-withContracts; default true]`): the one place it is written.
fn documented_in_help(arg: &clap::Arg) -> Option<String> {
    let help = arg.get_help()?.to_string();
    let rest = &help[help.find("[-")? + 1..];
    let end = rest.find([';', ']', ' '])?;
    Some(rest[..end].to_owned())
}

/// The table, derived from the clap definition ([`super::Cli`]) so that the two cannot drift;
/// `-help` is clap's own.
fn spellings() -> Vec<Spelling> {
    let command = <super::Cli as clap::CommandFactory>::command();
    let mut table: Vec<Spelling> = command
        .get_arguments()
        .filter_map(|arg| {
            Some(Spelling {
                documented: documented_in_help(arg)?,
                long: format!("--{}", arg.get_long()?),
                takes: takes(arg),
            })
        })
        .collect();
    table.push(Spelling {
        documented: "-help".into(),
        long: "--help".into(),
        takes: Takes::Nothing,
    });
    table
}

/// Long options whose value is the next argument (never translated itself).
fn long_with_value() -> Vec<String> {
    let command = <super::Cli as clap::CommandFactory>::command();
    command
        .get_arguments()
        .filter(|arg| takes(arg) == Takes::Value)
        .filter_map(|arg| Some(format!("--{}", arg.get_long()?)))
        .collect()
}

fn documented(table: &[Spelling], name: &str) -> Option<(String, Takes)> {
    table
        .iter()
        .find(|s| s.documented.eq_ignore_ascii_case(name))
        .map(|s| (s.long.clone(), s.takes))
}

/// Rewrites documented spellings into long options. `args[0]` is the program name.
pub(crate) fn translate_documented_options(args: Vec<OsString>) -> Vec<OsString> {
    let table = spellings();
    let long_with_value = long_with_value();
    let mut out = Vec::with_capacity(args.len());
    let mut args = args.into_iter();
    if let Some(program) = args.next() {
        out.push(program);
    }
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        let Some(text) = arg.to_str() else {
            out.push(arg);
            continue;
        };
        if text == "--" {
            out.push(arg);
            out.extend(args);
            break;
        }
        if text.starts_with("--") {
            let takes_next = long_with_value.iter().any(|long| long == text);
            out.push(arg);
            if takes_next && let Some(value) = args.next() {
                out.push(value);
            }
            continue;
        }
        let (name, inline) = match text.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (text, None),
        };
        let Some((long, takes)) = documented(&table, name) else {
            out.push(arg);
            continue;
        };
        let joined = |value: &std::ffi::OsStr| {
            let mut joined = OsString::from(&long);
            joined.push("=");
            joined.push(value);
            joined
        };
        match (inline, takes) {
            (Some(value), _) => out.push(joined(std::ffi::OsStr::new(value))),
            (None, Takes::Value) => match args.next() {
                Some(value) => out.push(joined(&value)),
                None => out.push(OsString::from(&long)),
            },
            (None, Takes::Boolean) => {
                match args.next_if(|next| !next.to_string_lossy().starts_with('-')) {
                    Some(value) => out.push(joined(&value)),
                    None => out.push(OsString::from(&long)),
                }
            }
            (None, Takes::Nothing) => out.push(OsString::from(&long)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(input: &[&str], expected: &[&str]) {
        let mut args = vec![OsString::from("fnmp_servicenow_export")];
        args.extend(input.iter().map(OsString::from));
        let got = translate_documented_options(args);
        let got: Vec<String> = got[1..]
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn the_table_derived_from_clap_holds_every_documented_option() {
        let table = spellings();
        let names: Vec<&str> = table.iter().map(|s| s.documented.as_str()).collect();
        assert_eq!(
            names,
            [
                "-url",
                "-user",
                "-token",
                "-endpoint",
                "-changes",
                "-changesPeriod",
                "-changesSince",
                "-connectionTest",
                "-withApplications",
                "-withContracts",
                "-WithHardwareInventory",
                "-help"
            ]
        );
        let period = table.iter().find(|s| s.documented == "-changesPeriod");
        assert!(period.is_some_and(|s| s.long == "--changes-period" && s.takes == Takes::Value));
        let changes = table.iter().find(|s| s.documented == "-changes");
        assert!(changes.is_some_and(|s| s.takes == Takes::Boolean));
        let long = long_with_value();
        for option in ["--token-file", "--dry-run", "--db", "--ca-file", "--token"] {
            assert!(long.iter().any(|l| l == option), "{option}: {long:?}");
        }
    }

    #[test]
    fn documented_synopsis_translates() {
        check(
            &[
                "-url",
                "https://x.service-now.com",
                "-user",
                "a@b.c",
                "-token",
                "tok",
                "-endpoint",
                "fnmp.do",
                "-changes",
                "true",
                "-changesPeriod",
                "-7",
                "-changesSince",
                "2026-01-31",
                "-connectionTest",
                "true",
                "-withApplications",
                "false",
                "-withContracts",
                "FALSE",
                "-WithHardwareInventory",
                "True",
            ],
            &[
                "--url=https://x.service-now.com",
                "--user=a@b.c",
                "--token=tok",
                "--endpoint=fnmp.do",
                "--changes=true",
                "--changes-period=-7",
                "--changes-since=2026-01-31",
                "--connection-test=true",
                "--with-applications=false",
                "--with-contracts=FALSE",
                "--with-hardware-inventory=True",
            ],
        );
    }

    #[test]
    fn names_are_case_insensitive() {
        check(
            &["-withHardwareInventory", "false", "-CHANGESPERIOD", "3"],
            &["--with-hardware-inventory=false", "--changes-period=3"],
        );
    }

    #[test]
    fn boolean_without_value_stands_alone() {
        check(
            &["-connectionTest", "-url", "u"],
            &["--connection-test", "--url=u"],
        );
        check(&["-withContracts"], &["--with-contracts"]);
    }

    #[test]
    fn value_option_takes_next_argument_even_with_a_dash() {
        check(&["-token", "-abc"], &["--token=-abc"]);
        check(&["-url"], &["--url"]);
    }

    #[test]
    fn inline_values_are_kept() {
        check(&["-changes=false"], &["--changes=false"]);
    }

    #[test]
    fn long_options_and_their_values_are_left_alone() {
        check(
            &[
                "--token",
                "-url",
                "--db",
                "x.sql",
                "-v",
                "-q",
                "--changes-period",
                "-3",
            ],
            &[
                "--token",
                "-url",
                "--db",
                "x.sql",
                "-v",
                "-q",
                "--changes-period",
                "-3",
            ],
        );
    }

    #[test]
    fn everything_after_double_dash_is_left_alone() {
        check(&["--", "-url", "x"], &["--", "-url", "x"]);
    }

    #[test]
    fn unknown_single_dash_options_pass_through_for_clap_to_reject() {
        check(&["-bogus", "1"], &["-bogus", "1"]);
    }
}
