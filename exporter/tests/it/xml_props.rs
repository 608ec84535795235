//! Property: whatever text a field holds, a segment is well-formed XML whose fields read
//! back as that text (characters XML 1.0 cannot carry become U+FFFD).

use exporter::testing::{field_names, write_segment};
use proptest::prelude::*;
use quick_xml::events::Event;

/// What the exporter promises to deliver for `text`.
fn deliverable(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\t' | '\n' | '\r' => c,
            '\u{0}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}' => '\u{fffd}',
            _ => c,
        })
        .collect()
}

/// Parses a segment into records of (field, text), failing on anything not well-formed.
fn parse(xml: &str) -> Result<Vec<Vec<(String, String)>>, String> {
    let mut reader = quick_xml::Reader::from_str(xml);
    reader.config_mut().trim_text(false);
    reader.config_mut().check_end_names = true;
    let mut records = Vec::new();
    let mut depth = 0;
    let mut field: Option<(String, String)> = None;
    loop {
        match reader.read_event().map_err(|e| e.to_string())? {
            Event::Start(start) => {
                depth += 1;
                let name = String::from_utf8_lossy(start.name().as_ref()).into_owned();
                match depth {
                    2 => records.push(Vec::new()),
                    3 => field = Some((name, String::new())),
                    1 => {}
                    _ => return Err(format!("unexpected nesting at {name}")),
                }
            }
            Event::End(_) => {
                if depth == 3 {
                    let done = field.take().ok_or("end without field")?;
                    records.last_mut().ok_or("field outside record")?.push(done);
                }
                depth -= 1;
            }
            Event::Text(text) => {
                let raw = text.decode().map_err(|e| e.to_string())?;
                if let Some((_, value)) = field.as_mut() {
                    value.push_str(&raw);
                } else if !raw.trim().is_empty() {
                    return Err(format!("stray text {raw:?}"));
                }
            }
            Event::GeneralRef(reference) => {
                let resolved = match reference.resolve_char_ref().map_err(|e| e.to_string())? {
                    Some(c) => c.to_string(),
                    None => match reference.decode().map_err(|e| e.to_string())?.as_ref() {
                        "amp" => "&".into(),
                        "lt" => "<".into(),
                        "gt" => ">".into(),
                        "quot" => "\"".into(),
                        "apos" => "'".into(),
                        other => return Err(format!("unknown entity &{other};")),
                    },
                };
                field
                    .as_mut()
                    .ok_or("reference outside a field")?
                    .1
                    .push_str(&resolved);
            }
            Event::Decl(_) => {}
            Event::Eof => break,
            other => return Err(format!("unexpected event {other:?}")),
        }
    }
    if depth != 0 {
        return Err("unclosed element".into());
    }
    Ok(records)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: crate::helpers::proptest_cases(200), ..ProptestConfig::default() })]

    #[test]
    fn segments_are_well_formed_and_round_trip_field_text(
        records in prop::collection::vec(
            prop::collection::vec(
                prop::option::of(prop_oneof![
                    any::<String>(),
                    "[&<>\"' a-z\u{e9}\u{4e2d}\u{1f600}\r\n\t]{0,12}",
                ]),
                22,
            ),
            0..5,
        )
    ) {
        let names = field_names("inventory").expect("inventory fields");
        let xml = write_segment("inventory", &records).expect("segment");
        let parsed = parse(&xml).map_err(TestCaseError::fail)?;
        let expected: Vec<Vec<(String, String)>> = records
            .iter()
            .map(|record| {
                names
                    .iter()
                    .zip(record)
                    .filter_map(|(name, value)| {
                        value.as_ref().map(|v| (name.to_string(), deliverable(v)))
                    })
                    .collect()
            })
            .collect();
        prop_assert_eq!(parsed, expected);
    }
}

#[test]
fn the_parser_used_by_the_property_rejects_broken_xml() {
    assert!(parse("<a><b>x</a></b>").is_err());
    assert!(parse("<a><b>&bogus;</b></a>").is_err());
    assert!(parse("<a><b>x</b>").is_err());
}
