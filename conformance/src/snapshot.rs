//! `insta`-style snapshots of whole tables: the rows a query selects, the listed columns,
//! rendered as text with everything that differs between runs or instances redacted (sys_ids,
//! timestamps, host names), rows sorted, compared with a `.snap` file.

use std::path::{Path, PathBuf};

use crate::instance::Record;

/// The snapshot text of `rows` (already restricted to `fields`).
pub fn render(table: &str, query: &str, fields: &[String], rows: &[Record], host: &str) -> String {
    let mut rendered: Vec<String> = rows
        .iter()
        .map(|row| {
            fields
                .iter()
                .map(|f| {
                    let value = row.get(f).map(String::as_str).unwrap_or("");
                    format!("  {f}: {}\n", redact(value, host))
                })
                .collect::<String>()
        })
        .collect();
    rendered.sort();
    let mut text = format!("table: {table}\nquery: {query}\nrows: {}\n", rows.len());
    for row in rendered {
        text.push_str("-\n");
        text.push_str(&row);
    }
    text
}

/// Replaces sys_ids (32 hex digits), `YYYY-MM-DD HH:MM:SS` timestamps (and ISO-8601 ones)
/// and the instance's host name with placeholders.
pub fn redact(value: &str, host: &str) -> String {
    let mut text = if host.is_empty() {
        value.to_owned()
    } else {
        value.replace(host, "[host]")
    };
    text = replace_runs(&text, 32, |c| c.is_ascii_hexdigit(), "[sys_id]");
    redact_timestamps(&text)
}

/// Replaces each maximal run of exactly `len` characters satisfying `class`.
fn replace_runs(text: &str, len: usize, class: impl Fn(char) -> bool, with: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let run = chars[i..].iter().take_while(|c| class(**c)).count();
        if run == len {
            out.push_str(with);
        } else {
            out.extend(&chars[i..i + run.max(1)]);
        }
        i += run.max(1);
    }
    out
}

fn redact_timestamps(text: &str) -> String {
    // Shape of `2026-01-31 12:00:00` / `2026-01-31T12:00:00Z`: digits at fixed places.
    const SHAPE: &[u8] = b"dddd-dd-dd?dd:dd:dd";
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let fits = bytes.len() - i >= SHAPE.len()
            && SHAPE.iter().zip(&bytes[i..]).all(|(s, b)| match s {
                b'd' => b.is_ascii_digit(),
                b'?' => *b == b' ' || *b == b'T',
                other => other == b,
            });
        if fits {
            out.push_str("[timestamp]");
            i += SHAPE.len();
            if bytes.get(i) == Some(&b'Z') {
                i += 1;
            }
        } else {
            let ch = text[i..].chars().next().unwrap_or(' ');
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// `snapshots/<scenario>@<table>.snap`.
pub fn path(dir: &Path, scenario: &str, table: &str, index: usize) -> PathBuf {
    let suffix = if index == 0 {
        String::new()
    } else {
        format!("-{index}")
    };
    dir.join(format!("{scenario}@{table}{suffix}.snap"))
}

const HEADER: &str = "---\nsource: conformance\n---\n";

/// Compares `text` with the file; on a difference writes `<file>.new` (or the file itself when
/// `update`) and describes the difference.
pub fn check(file: &Path, text: &str, update: bool) -> Result<(), String> {
    let want = std::fs::read_to_string(file)
        .ok()
        .map(|s| s.strip_prefix(HEADER).unwrap_or(&s).to_owned());
    if want.as_deref() == Some(text) {
        return Ok(());
    }
    let contents = format!("{HEADER}{text}");
    if let Some(dir) = file.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if update {
        return std::fs::write(file, contents)
            .map_err(|e| format!("cannot write {}: {e}", file.display()));
    }
    let new = file.with_extension("snap.new");
    let _ = std::fs::write(&new, &contents);
    match want {
        None => Err(format!(
            "no snapshot {} yet (wrote {}; accept with --update-snapshots)",
            file.display(),
            new.display()
        )),
        Some(want) => Err(format!(
            "snapshot {} differs (new one in {}):\n{}",
            file.display(),
            new.display(),
            diff(&want, text)
        )),
    }
}

/// Lines only in the snapshot (`-`) and only in the new text (`+`), counted: a line that
/// occurs twice in the snapshot and once in the new text is shown once as removed.
fn diff(want: &str, got: &str) -> String {
    let mut balance: std::collections::BTreeMap<&str, i64> = std::collections::BTreeMap::new();
    for line in want.lines() {
        *balance.entry(line).or_default() -= 1;
    }
    for line in got.lines() {
        *balance.entry(line).or_default() += 1;
    }
    let mut out = String::new();
    for (line, n) in &balance {
        let sign = if *n < 0 { '-' } else { '+' };
        for _ in 0..n.abs() {
            out.push_str(&format!("       {sign} {line}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sys_ids_timestamps_and_hosts_are_redacted() {
        let text = redact(
            "0123456789abcdef0123456789abcdef at 2026-01-31 12:00:00 on http://127.0.0.1:4242/x, 2026-02-01T01:02:03Z",
            "127.0.0.1:4242",
        );
        assert_eq!(
            text,
            "[sys_id] at [timestamp] on http://[host]/x, [timestamp]"
        );
        // 31 or 33 hex digits are not a sys_id.
        assert_eq!(
            redact("abcdefabcdefabcdefabcdefabcdefa", ""),
            "abcdefabcdefabcdefabcdefabcdefa"
        );
    }

    #[test]
    fn rows_are_sorted_so_insertion_order_does_not_matter() {
        let row = |n: &str| Record::from([("name".to_owned(), n.to_owned())]);
        let fields = vec!["name".to_owned()];
        let a = render("t", "", &fields, &[row("b"), row("a")], "");
        let b = render("t", "", &fields, &[row("a"), row("b")], "");
        assert_eq!(a, b);
        assert!(a.contains("rows: 2"));
    }

    #[test]
    fn a_changed_table_fails_and_leaves_the_new_snapshot() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("s@t.snap");
        assert!(
            check(&file, "rows: 1\n", false).is_err(),
            "missing snapshot must fail"
        );
        check(&file, "rows: 1\n", true).expect("update writes");
        check(&file, "rows: 1\n", false).expect("same text passes");
        let err = check(&file, "rows: 2\n", false).expect_err("changed text fails");
        assert!(
            err.contains("- rows: 1") && err.contains("+ rows: 2"),
            "{err}"
        );
        assert!(file.with_extension("snap.new").exists());
    }
}
