//! Reading a segment's XML (docs/wire-protocol.md §6) safely: no DTD, no entities beyond
//! XML's five and character references, one root of the expected name, flat records of
//! flat fields. Anything else is refused (returnCode 12) before a byte is stored.

use quick_xml::Reader;
use quick_xml::events::Event;

/// One record: (field element name, text), in document order.
pub type XmlRecord = Vec<(String, String)>;

fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}')
}

fn check_chars(s: &str) -> Result<(), String> {
    match s.chars().find(|c| !is_xml_char(*c)) {
        Some(c) => Err(format!(
            "character U+{:04X} is not allowed in XML",
            c as u32
        )),
        None => Ok(()),
    }
}

/// Parses a segment, calling `on_record` for each record element.
pub fn parse(
    data: &str,
    root: &str,
    record: &str,
    mut on_record: impl FnMut(XmlRecord) -> Result<(), String>,
) -> Result<usize, String> {
    let mut reader = Reader::from_str(data);
    let config = reader.config_mut();
    config.expand_empty_elements = true;
    config.trim_text(false);
    config.check_end_names = true;
    let mut depth = 0usize;
    let mut seen_root = false;
    let mut count = 0usize;
    let mut current: XmlRecord = Vec::new();
    let mut field: Option<(String, String)> = None;
    loop {
        let event = reader.read_event().map_err(|e| {
            format!(
                "not well-formed XML at byte {}: {e}",
                reader.error_position()
            )
        })?;
        match event {
            Event::Decl(decl) => {
                if let Some(enc) = decl.encoding() {
                    let enc = enc.map_err(|e| format!("bad XML declaration: {e}"))?;
                    let enc = String::from_utf8_lossy(&enc).to_ascii_lowercase();
                    if enc != "utf-8" && enc != "utf8" {
                        return Err(format!("encoding {enc} is not UTF-8"));
                    }
                }
            }
            Event::DocType(_) => return Err("DOCTYPE declarations are not allowed".into()),
            Event::PI(_) | Event::Comment(_) => {}
            Event::Start(e) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                match depth {
                    0 if seen_root => return Err("more than one root element".into()),
                    0 if name != root => {
                        return Err(format!("root element is <{name}>, expected <{root}>"));
                    }
                    0 => seen_root = true,
                    1 if name != record => {
                        return Err(format!("element <{name}> in <{root}>, expected <{record}>"));
                    }
                    1 => current = Vec::new(),
                    2 => field = Some((name, String::new())),
                    _ => return Err(format!("element <{name}> nested inside a field")),
                }
                depth += 1;
            }
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                match depth {
                    2 => {
                        if let Some(f) = field.take() {
                            current.push(f);
                        }
                    }
                    1 => {
                        count += 1;
                        on_record(std::mem::take(&mut current))?;
                    }
                    _ => {}
                }
            }
            Event::Empty(_) => return Err("unexpected empty element".into()),
            Event::Text(t) => {
                let text = t.decode().map_err(|e| format!("invalid text: {e}"))?;
                check_chars(&text)?;
                match field.as_mut() {
                    Some((_, buf)) if depth == 3 => buf.push_str(&text),
                    _ if text.trim().is_empty() => {}
                    _ => return Err("text outside a field element".into()),
                }
            }
            Event::CData(t) => {
                let text = t.decode().map_err(|e| format!("invalid CDATA: {e}"))?;
                check_chars(&text)?;
                match field.as_mut() {
                    Some((_, buf)) if depth == 3 => buf.push_str(&text),
                    _ => return Err("CDATA outside a field element".into()),
                }
            }
            Event::GeneralRef(r) => {
                let resolved = if r.is_char_ref() {
                    match r.resolve_char_ref() {
                        Ok(Some(c)) if is_xml_char(c) => c,
                        _ => return Err("invalid character reference".into()),
                    }
                } else {
                    let name = r.decode().map_err(|e| format!("invalid reference: {e}"))?;
                    match name.as_ref() {
                        "amp" => '&',
                        "lt" => '<',
                        "gt" => '>',
                        "apos" => '\'',
                        "quot" => '"',
                        other => return Err(format!("entity &{other}; is not allowed")),
                    }
                };
                match field.as_mut() {
                    Some((_, buf)) if depth == 3 => buf.push(resolved),
                    _ => return Err("reference outside a field element".into()),
                }
            }
            Event::Eof => break,
        }
    }
    if !seen_root {
        return Err("no root element".into());
    }
    if depth != 0 {
        return Err("unexpected end of document".into());
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(data: &str) -> Result<Vec<XmlRecord>, String> {
        let mut out = Vec::new();
        parse(data, "Inventories", "Inventory", |r| {
            out.push(r);
            Ok(())
        })?;
        Ok(out)
    }

    #[test]
    fn reads_records_and_unescapes() {
        let r = records(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Inventories>\n  <Inventory>\n    <ComputerID>1</ComputerID>\n    <ComputerName>A &amp; B&#x21;</ComputerName>\n  </Inventory>\n  <Inventory><ComputerID>2</ComputerID><Domain/></Inventory>\n</Inventories>\n",
        )
        .expect("valid");
        assert_eq!(r.len(), 2);
        assert_eq!(r[0][1], ("ComputerName".into(), "A & B!".into()));
        assert_eq!(r[1][1], ("Domain".into(), String::new()));
        assert_eq!(records("<Inventories/>").expect("empty").len(), 0);
    }

    #[test]
    fn refuses_hostile_or_malformed_xml() {
        for bad in [
            "<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY a \"b\">]><Inventories/>",
            "<!DOCTYPE Inventories SYSTEM \"file:///etc/passwd\"><Inventories/>",
            "<Inventories><Inventory><ComputerID>&xxe;</ComputerID></Inventory></Inventories>",
            "<Inventories><Inventory><ComputerID>1</ComputerID></Inventory>",
            "<Contracts/>",
            "<Inventories><Contract/></Inventories>",
            "<Inventories><Inventory><A><B>1</B></A></Inventory></Inventories>",
            "<Inventories/><Inventories/>",
            "<Inventories>text</Inventories>",
            "<Inventories><Inventory><A>&#0;</A></Inventory></Inventories>",
            "<Inventories><Inventory><A>\u{1}</A></Inventory></Inventories>",
            "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><Inventories/>",
            "",
            "not xml",
            "<Inventories><Inventory></Inventorie></Inventories>",
        ] {
            assert!(records(bad).is_err(), "accepted {bad:?}");
        }
    }
}
