//! Reading a segment's XML (docs/wire-protocol.md §6) safely: no DTD, no entities beyond
//! XML's five and character references, one root of the expected name, flat records of
//! flat fields. Anything else is refused (returnCode 12) before a byte is stored.

use quick_xml::Reader;
use quick_xml::events::Event;

/// One field of a record: its element name and text.
pub type XmlField = (String, String);

fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}')
}

fn check_chars(s: &str) -> Result<(), String> {
    // Nearly all text is plain: no control character, and no 0xEF byte, which starts the
    // UTF-8 of the two excluded non-characters U+FFFE and U+FFFF. Such text is checked a
    // byte at a time, which the compiler vectorises, instead of decoding every character.
    let plain = |b: u8| (b >= 0x20 && b != 0xEF) || matches!(b, b'\t' | b'\n' | b'\r');
    if s.bytes().all(plain) {
        return Ok(());
    }
    match s.chars().find(|c| !is_xml_char(*c)) {
        Some(c) => Err(format!(
            "character U+{:04X} is not allowed in XML",
            c as u32
        )),
        None => Ok(()),
    }
}

/// Where the reader is in a segment: root → record → field. The current record's fields are
/// kept in buffers reused from record to record (a segment holds hundreds of records of the
/// same fields), so reading allocates only while the first records are read.
struct Cursor<'a> {
    root: &'a str,
    record: &'a str,
    depth: usize,
    seen_root: bool,
    count: usize,
    /// The current record's fields are `fields[..len]`; the rest are spare buffers.
    fields: Vec<XmlField>,
    len: usize,
}

impl<'a> Cursor<'a> {
    fn new(root: &'a str, record: &'a str) -> Self {
        Self {
            root,
            record,
            depth: 0,
            seen_root: false,
            count: 0,
            fields: Vec::new(),
            len: 0,
        }
    }

    fn start(&mut self, name: &str) -> Result<(), String> {
        let (root, record) = (self.root, self.record);
        match self.depth {
            0 if self.seen_root => return Err("more than one root element".into()),
            0 if name != root => {
                return Err(format!("root element is <{name}>, expected <{root}>"));
            }
            0 => self.seen_root = true,
            1 if name != record => {
                return Err(format!("element <{name}> in <{root}>, expected <{record}>"));
            }
            1 => self.len = 0,
            2 => self.start_field(name),
            _ => return Err(format!("element <{name}> nested inside a field")),
        }
        self.depth += 1;
        Ok(())
    }

    /// Takes the next spare buffer for a field named `name`.
    fn start_field(&mut self, name: &str) {
        if self.len == self.fields.len() {
            self.fields.push((String::new(), String::new()));
        }
        let (n, text) = &mut self.fields[self.len];
        if n != name {
            n.clear();
            n.push_str(name);
        }
        text.clear();
    }

    /// Closes an element; returns true when it completed a record (then `record()`).
    fn end(&mut self) -> bool {
        self.depth = self.depth.saturating_sub(1);
        match self.depth {
            2 => {
                self.len += 1;
                false
            }
            1 => {
                self.count += 1;
                true
            }
            _ => false,
        }
    }

    /// The fields of the record just completed, in document order.
    fn record(&self) -> &[XmlField] {
        &self.fields[..self.len]
    }

    /// The text buffer of the field being read, if the reader is inside one.
    fn field_text(&mut self) -> Option<&mut String> {
        match self.fields.get_mut(self.len) {
            Some((_, buf)) if self.depth == 3 => Some(buf),
            _ => None,
        }
    }

    /// Whether `text` is only ASCII white space outside a field: what [`Cursor::text`]
    /// accepts and ignores, known without decoding it.
    fn between_elements(&self, text: &[u8]) -> bool {
        // XML's white space: not `is_ascii_whitespace`, whose form feed XML refuses.
        self.depth != 3 && (text.iter()).all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
    }

    fn text(&mut self, text: &str) -> Result<(), String> {
        check_chars(text)?;
        match self.field_text() {
            Some(buf) => buf.push_str(text),
            None if text.trim().is_empty() => {}
            None => return Err("text outside a field element".into()),
        }
        Ok(())
    }

    fn cdata(&mut self, text: &str) -> Result<(), String> {
        check_chars(text)?;
        let buf = self.field_text().ok_or("CDATA outside a field element")?;
        buf.push_str(text);
        Ok(())
    }

    fn reference(&mut self, c: char) -> Result<(), String> {
        let buf = self
            .field_text()
            .ok_or("reference outside a field element")?;
        buf.push(c);
        Ok(())
    }

    fn finish(self) -> Result<usize, String> {
        if !self.seen_root {
            return Err("no root element".into());
        }
        if self.depth != 0 {
            return Err("unexpected end of document".into());
        }
        Ok(self.count)
    }
}

/// Only UTF-8 may be declared.
fn check_declaration(decl: &quick_xml::events::BytesDecl<'_>) -> Result<(), String> {
    if let Some(enc) = decl.encoding() {
        let enc = enc.map_err(|e| format!("bad XML declaration: {e}"))?;
        let enc = String::from_utf8_lossy(&enc).to_ascii_lowercase();
        if enc != "utf-8" && enc != "utf8" {
            return Err(format!("encoding {enc} is not UTF-8"));
        }
    }
    Ok(())
}

/// A character reference to a legal XML character, or one of XML's five entities.
fn resolve_reference(r: &quick_xml::events::BytesRef<'_>) -> Result<char, String> {
    if r.is_char_ref() {
        return match r.resolve_char_ref() {
            Ok(Some(c)) if is_xml_char(c) => Ok(c),
            _ => Err("invalid character reference".into()),
        };
    }
    let name = r.decode().map_err(|e| format!("invalid reference: {e}"))?;
    match name.as_ref() {
        "amp" => Ok('&'),
        "lt" => Ok('<'),
        "gt" => Ok('>'),
        "apos" => Ok('\''),
        "quot" => Ok('"'),
        other => Err(format!("entity &{other}; is not allowed")),
    }
}

/// An element's name. The reader reads a `&str`, so a name is UTF-8 unless the reader cut a
/// character, which it does not; refused rather than assumed.
fn element_name(name: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(name).map_err(|_| "an element name is not UTF-8".to_owned())
}

/// Parses a segment, calling `on_record` with the fields of each record element.
pub fn parse(
    data: &str,
    root: &str,
    record: &str,
    mut on_record: impl FnMut(&[XmlField]) -> Result<(), String>,
) -> Result<usize, String> {
    let mut reader = Reader::from_str(data);
    let config = reader.config_mut();
    config.expand_empty_elements = true;
    config.trim_text(false);
    config.check_end_names = true;
    let mut cursor = Cursor::new(root, record);
    loop {
        let event = reader.read_event().map_err(|e| {
            format!(
                "not well-formed XML at byte {}: {e}",
                reader.error_position()
            )
        })?;
        match event {
            Event::Decl(decl) => check_declaration(&decl)?,
            Event::DocType(_) => return Err("DOCTYPE declarations are not allowed".into()),
            Event::PI(_) | Event::Comment(_) => {}
            Event::Start(e) => cursor.start(element_name(e.name().as_ref())?)?,
            Event::End(_) => {
                if cursor.end() {
                    on_record(cursor.record())?;
                }
            }
            Event::Empty(_) => return Err("unexpected empty element".into()),
            // The indentation between elements (half of all text) is passed over as it is.
            Event::Text(t) if cursor.between_elements(&t) => {}
            Event::Text(t) => {
                cursor.text(&t.decode().map_err(|e| format!("invalid text: {e}"))?)?;
            }
            Event::CData(t) => {
                cursor.cdata(&t.decode().map_err(|e| format!("invalid CDATA: {e}"))?)?;
            }
            Event::GeneralRef(r) => cursor.reference(resolve_reference(&r)?)?,
            Event::Eof => break,
        }
    }
    cursor.finish()
}

/// A segment's records as read once, kept compactly: each field's element name (by index)
/// and text (a range of one string). The intake reads every segment to check it; what it
/// read is handed to the worker, which then need not read the XML again.
#[derive(Debug, Default)]
pub struct Records {
    names: Vec<String>,
    text: String,
    /// (name, start, end of its text) per field, records one after another.
    fields: Vec<(usize, usize, usize)>,
    /// Where each record's fields end in `fields`.
    ends: Vec<usize>,
}

impl Records {
    /// Reads a segment (refused as [`parse`] refuses it).
    pub fn read(data: &str, root: &str, record: &str) -> Result<Self, String> {
        let mut out = Self::default();
        // foldhash, not SipHash: asked once per field of every record.
        let mut index: foldhash::HashMap<String, usize> = Default::default();
        parse(data, root, record, |fields| {
            for (name, text) in fields {
                let n = match index.get(name) {
                    Some(&n) => n,
                    None => {
                        out.names.push(name.clone());
                        index.insert(name.clone(), out.names.len() - 1);
                        out.names.len() - 1
                    }
                };
                let start = out.text.len();
                out.text.push_str(text);
                out.fields.push((n, start, out.text.len()));
            }
            out.ends.push(out.fields.len());
            Ok(())
        })?;
        Ok(out)
    }

    /// The number of records.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// The fields of record `i` (element name, text), in document order.
    pub fn record(&self, i: usize) -> impl Iterator<Item = (&str, &str)> {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        let end = self.ends.get(i).copied().unwrap_or(start);
        self.fields[start..end]
            .iter()
            .map(|&(n, a, b)| (self.names[n].as_str(), &self.text[a..b]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(data: &str) -> Result<Vec<Vec<XmlField>>, String> {
        let mut out = Vec::new();
        parse(data, "Inventories", "Inventory", |r| {
            out.push(r.to_vec());
            Ok(())
        })?;
        Ok(out)
    }

    use proptest::prelude::*;

    fn segment_text() -> impl Strategy<Value = String> {
        let words = [
            "<Inventories>",
            "</Inventories>",
            "<Inventory>",
            "</Inventory>",
            "<ComputerID>",
            "</ComputerID>",
            "1",
            "&amp;",
            "&#x0;",
            "<!DOCTYPE x>",
            "<![CDATA[a]]>",
            "<?xml version=\"1.0\"?>",
        ];
        prop_oneof![
            ".*".prop_map(String::from),
            proptest::collection::vec(proptest::sample::select(words.to_vec()), 0..30)
                .prop_map(|parts| parts.concat()),
        ]
    }

    proptest! {
        /// Any text, and text built from the segment's own vocabulary: parsed or refused,
        /// never a panic; what parses reports as many records as it handed over.
        /// `PROPTEST_CASES=100000` runs it long (docs/reliability.md).
        #[test]
        fn any_segment_parses_or_is_refused(
            data in segment_text()
        ) {
            let mut handed = 0usize;
            let parsed = parse(&data, "Inventories", "Inventory", |_| {
                handed += 1;
                Ok(())
            });
            if let Ok(n) = parsed {
                prop_assert_eq!(n, handed);
            }
        }
    }

    #[test]
    fn kept_records_are_the_records_read() {
        let data = "<Inventories><Inventory><ComputerID>1</ComputerID><Name>A &amp; B</Name></Inventory><Inventory><Name>C</Name></Inventory><Inventory/></Inventories>";
        let kept = Records::read(data, "Inventories", "Inventory").expect("valid");
        let read = records(data).expect("valid");
        assert_eq!(kept.len(), read.len());
        for (i, r) in read.iter().enumerate() {
            let fields: Vec<(String, String)> = kept
                .record(i)
                .map(|(n, t)| (n.to_owned(), t.to_owned()))
                .collect();
            assert_eq!(&fields, r);
        }
        assert!(
            Records::read(
                "<Inventories><Contract/></Inventories>",
                "Inventories",
                "Inventory"
            )
            .is_err()
        );
    }

    #[test]
    fn reads_records_and_unescapes() {
        let r = records(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Inventories>\n  <Inventory>\n    <ComputerID>1</ComputerID>\n    <ComputerName>A &amp; B&#x21;</ComputerName>\n  </Inventory>\n  <Inventory><ComputerID>2</ComputerID><Domain/></Inventory>\n</Inventories>\n",
        )
        .expect("valid");
        assert_eq!(r.len(), 2);
        assert_eq!(r[0][1], ("ComputerName".into(), "A & B!".into()));
        assert_eq!(r[1].len(), 2, "a record has only its own fields");
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
            // Between elements too: a form feed is not XML white space.
            "<Inventories>\u{c}<Inventory><A>1</A></Inventory></Inventories>",
            "<Inventories><Inventory>\u{b}<A>1</A></Inventory></Inventories>",
        ] {
            assert!(records(bad).is_err(), "accepted {bad:?}");
        }
    }

    /// The byte-wise fast path of `check_chars` accepts and refuses exactly what checking
    /// each character does.
    #[test]
    fn the_fast_character_check_agrees_with_checking_each_character() {
        let slow = |s: &str| s.chars().all(is_xml_char);
        let cases = [
            "plain text 123",
            "tab\tnew\nline\rreturn",
            "bell\u{7}",
            "nul\u{0}",
            "del\u{7f}",
            "é ü ß 日本",
            "\u{FFFD} replacement",
            "\u{FFFE}",
            "\u{FFFF}",
            "\u{EFFF} and \u{F000}",
            "\u{FEFF} byte order mark",
            "\u{1F600} emoji",
            "",
        ];
        for case in cases {
            assert_eq!(check_chars(case).is_ok(), slow(case), "{case:?}");
        }
        proptest::proptest!(|(s in "\\PC*|[\\x00-\\x{7f}\\x{fffe}\\x{ffff}\\x{effe}]{0,12}")| {
            proptest::prop_assert_eq!(check_chars(&s).is_ok(), slow(&s));
        });
    }
}
