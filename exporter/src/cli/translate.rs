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

/// The documented spellings ([CLI-22R1]) and the long option each stands for.
const DOCUMENTED: &[(&str, &str, Takes)] = &[
    ("-url", "--url", Takes::Value),
    ("-user", "--user", Takes::Value),
    ("-token", "--token", Takes::Value),
    ("-endpoint", "--endpoint", Takes::Value),
    ("-changes", "--changes", Takes::Boolean),
    ("-changesPeriod", "--changes-period", Takes::Value),
    ("-changesSince", "--changes-since", Takes::Value),
    ("-connectionTest", "--connection-test", Takes::Boolean),
    ("-withApplications", "--with-applications", Takes::Boolean),
    ("-withContracts", "--with-contracts", Takes::Boolean),
    (
        "-WithHardwareInventory",
        "--with-hardware-inventory",
        Takes::Boolean,
    ),
    ("-help", "--help", Takes::Nothing),
];

/// Long options whose value is the next argument (never translated itself).
const LONG_WITH_VALUE: &[&str] = &[
    "--url",
    "--user",
    "--token",
    "--endpoint",
    "--changes-period",
    "--changes-since",
    "--db",
    "--config",
    "--log-file",
    "--ca-file",
    "--oauth-client-id",
    "--oauth-client-secret",
];

fn documented(name: &str) -> Option<(&'static str, Takes)> {
    DOCUMENTED
        .iter()
        .find(|(spelling, _, _)| spelling.eq_ignore_ascii_case(name))
        .map(|&(_, long, takes)| (long, takes))
}

/// Rewrites documented spellings into long options. `args[0]` is the program name.
pub(crate) fn translate_documented_options(args: Vec<OsString>) -> Vec<OsString> {
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
            let takes_next = LONG_WITH_VALUE.contains(&text);
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
        let Some((long, takes)) = documented(name) else {
            out.push(arg);
            continue;
        };
        let joined = |value: &std::ffi::OsStr| {
            let mut joined = OsString::from(long);
            joined.push("=");
            joined.push(value);
            joined
        };
        match (inline, takes) {
            (Some(value), _) => out.push(joined(std::ffi::OsStr::new(value))),
            (None, Takes::Value) => match args.next() {
                Some(value) => out.push(joined(&value)),
                None => out.push(OsString::from(long)),
            },
            (None, Takes::Boolean) => {
                match args.next_if(|next| !next.to_string_lossy().starts_with('-')) {
                    Some(value) => out.push(joined(&value)),
                    None => out.push(OsString::from(long)),
                }
            }
            (None, Takes::Nothing) => out.push(OsString::from(long)),
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
