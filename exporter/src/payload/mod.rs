//! The XML chunk of one segment, exactly as wire-protocol §6 specifies it.
//!
//! Written by hand rather than through a serializer because the format is byte-exact (golden
//! files `fixtures/wire/payloads/*.xml`) and tiny: a declaration, a root, records of fields,
//! two-space indentation, `\n` line ends, NULL fields omitted. A [`SegmentWriter`] grows one
//! segment at a time, so memory is bounded by `segment_size`, never by the data set.

use std::fmt::Write as _;

use chrono::NaiveDateTime;

use crate::error::ExportError;
use crate::source::{DataType, Database, FieldFormat, FieldValue};

const DECLARATION: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";

/// A finished segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Segment {
    pub(crate) xml: String,
    pub(crate) records: usize,
}

/// Builds the XML of one segment, record by record.
pub(crate) struct SegmentWriter {
    data_type: DataType,
    xml: String,
    records: usize,
}

impl SegmentWriter {
    pub(crate) fn new(data_type: DataType) -> SegmentWriter {
        SegmentWriter::with_capacity(data_type, 4096)
    }

    /// A writer whose buffer starts with `capacity` bytes (the size of the previous segment
    /// avoids regrowing the buffer segment after segment).
    pub(crate) fn with_capacity(data_type: DataType, capacity: usize) -> SegmentWriter {
        let mut xml = String::with_capacity(capacity);
        xml.push_str(DECLARATION);
        let _ = writeln!(xml, "<{}>", data_type.root_element());
        SegmentWriter {
            data_type,
            xml,
            records: 0,
        }
    }

    /// Records written so far.
    pub(crate) fn records(&self) -> usize {
        self.records
    }

    /// Appends one record; `values` are its field values in field order.
    pub(crate) fn push_record<'a>(&mut self, values: &mut dyn Iterator<Item = FieldValue<'a>>) {
        let record = self.data_type.record_element();
        let xml = &mut self.xml;
        xml.push_str("  <");
        xml.push_str(record);
        xml.push_str(">\n");
        for (field, value) in self.data_type.fields().iter().zip(values) {
            if matches!(value, FieldValue::Null) {
                continue;
            }
            xml.push_str("    <");
            xml.push_str(field.name);
            xml.push('>');
            write_value(xml, field.format, &value);
            xml.push_str("</");
            xml.push_str(field.name);
            xml.push_str(">\n");
        }
        xml.push_str("  </");
        xml.push_str(record);
        xml.push_str(">\n");
        self.records += 1;
    }

    pub(crate) fn finish(mut self) -> Segment {
        let _ = writeln!(self.xml, "</{}>", self.data_type.root_element());
        Segment {
            xml: self.xml,
            records: self.records,
        }
    }
}

/// Streams the data type's records (changed since `baseline`, if given) into segments of at
/// most `segment_size` records, calling `emit(segment, last)` for each as soon as it is full.
/// A segment is emitted only once the next record exists, so the final one is known to be
/// last; with no records at all one empty segment is emitted, marked last.
pub(crate) fn stream_segments(
    db: &Database,
    data_type: DataType,
    baseline: Option<NaiveDateTime>,
    compare: bool,
    segment_size: usize,
    mut emit: impl FnMut(Segment, bool) -> Result<(), ExportError>,
) -> Result<(), ExportError> {
    let mut writer = SegmentWriter::new(data_type);
    db.for_each_record(data_type, baseline, compare, |values| {
        if writer.records() >= segment_size {
            let next = SegmentWriter::with_capacity(data_type, writer.xml.len() + 1024);
            let full = std::mem::replace(&mut writer, next).finish();
            emit(full, false)?;
        }
        writer.push_record(values);
        Ok(())
    })?;
    emit(writer.finish(), true)
}

/// [`stream_segments`], building each segment on a second thread while the previous one is
/// emitted (sent and acknowledged): the instance then waits less between segments. Segments
/// are still emitted one at a time and in order; at most one waits, finished, besides the
/// one being built. The first error, of either side, stops both and is returned.
pub(crate) fn stream_segments_ahead(
    db: &mut Database,
    data_type: DataType,
    (baseline, compare): (Option<NaiveDateTime>, bool),
    segment_size: usize,
    mut emit: impl FnMut(Segment, bool) -> Result<(), ExportError>,
) -> Result<(), ExportError> {
    let stopped = |why: &str| ExportError::Export {
        data_type: data_type.label(),
        reason: why.to_owned(),
    };
    std::thread::scope(|scope| {
        let (ready, next) = std::sync::mpsc::sync_channel::<(Segment, bool)>(1);
        let builder = scope.spawn(move || {
            stream_segments(
                db,
                data_type,
                baseline,
                compare,
                segment_size,
                |seg, last| {
                    // Closed only when sending failed: that error is the one returned.
                    (ready.send((seg, last))).map_err(|_| stopped("sending stopped"))
                },
            )
        });
        let sent = next.iter().try_for_each(|(seg, last)| emit(seg, last));
        drop(next);
        let built = (builder.join()).unwrap_or_else(|_| Err(stopped("building a segment failed")));
        sent.and(built)
    })
}

/// A field's text as the XML carries it (escaped), or `None` for NULL (omitted).
pub(crate) fn write_field_text(
    out: &mut String,
    format: FieldFormat,
    value: &FieldValue<'_>,
) -> Option<()> {
    if matches!(value, FieldValue::Null) {
        return None;
    }
    write_value(out, format, value);
    Some(())
}

fn write_value(out: &mut String, format: FieldFormat, value: &FieldValue<'_>) {
    match (format, value) {
        (_, FieldValue::Null) => {}
        (FieldFormat::Plain, FieldValue::Integer(i)) => {
            let _ = write!(out, "{i}");
        }
        (FieldFormat::Plain, FieldValue::Real(f)) => {
            let _ = write!(out, "{f}");
        }
        (FieldFormat::Money, FieldValue::Integer(i)) => {
            let _ = write!(out, "{i}.00");
        }
        (FieldFormat::Money, FieldValue::Real(f)) => {
            let _ = write!(out, "{f:.2}");
        }
        (FieldFormat::Money, FieldValue::Text(text)) => match text.trim().parse::<f64>() {
            Ok(f) if f.is_finite() => {
                let _ = write!(out, "{f:.2}");
            }
            _ => escape_text(out, text),
        },
        (FieldFormat::Plain, FieldValue::Text(text)) => escape_text(out, text),
    }
}

/// Appends `text` as XML character data: `&`, `<`, `>` escaped (wire-protocol §6); a carriage
/// return written as `&#13;` so that it survives a parser's line-end normalisation; characters
/// XML 1.0 cannot carry (most C0 controls, U+FFFE, U+FFFF) replaced by U+FFFD.
pub(crate) fn escape_text(out: &mut String, text: &str) {
    // Byte scan: every byte that needs attention is ASCII or starts U+FFFE/U+FFFF (EF BF BE/BF),
    // so the slices pushed between them always fall on character boundaries.
    let bytes = text.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let replacement = match bytes[i] {
            b'&' => Some(("&amp;", 1)),
            b'<' => Some(("&lt;", 1)),
            b'>' => Some(("&gt;", 1)),
            b'\r' => Some(("&#13;", 1)),
            b'\t' | b'\n' => None,
            0x00..=0x1f => Some(("\u{fffd}", 1)),
            0xef if bytes.get(i + 1) == Some(&0xbf)
                && matches!(bytes.get(i + 2), Some(0xbe | 0xbf)) =>
            {
                Some(("\u{fffd}", 3))
            }
            _ => None,
        };
        match replacement {
            Some((replacement, len)) => {
                out.push_str(&text[start..i]);
                out.push_str(replacement);
                i += len;
                start = i;
            }
            None => i += 1,
        }
    }
    out.push_str(&text[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    fn escaped(text: &str) -> String {
        let mut out = String::new();
        escape_text(&mut out, text);
        out
    }

    #[test]
    fn escapes_markup_and_keeps_unicode() {
        assert_eq!(escaped("a&b<c>d"), "a&amp;b&lt;c&gt;d");
        assert_eq!(escaped("Müller ✓ \"q\" 'a'"), "Müller ✓ \"q\" 'a'");
        assert_eq!(escaped("]]>"), "]]&gt;");
        assert_eq!(escaped("x\r\ny\tz"), "x&#13;\ny\tz");
        assert_eq!(escaped("nul\u{0}bell\u{7}"), "nul\u{fffd}bell\u{fffd}");
        assert_eq!(
            escaped("a\u{fffe}b\u{ffff}c\u{fff0}d\u{ffbf}"),
            "a\u{fffd}b\u{fffd}c\u{fff0}d\u{ffbf}"
        );
        assert_eq!(escaped(""), "");
        assert_eq!(escaped("&"), "&amp;");
    }

    fn sample() -> Database {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/fnms/sample.sql");
        Database::open(&crate::source::Source::from_path(path)).expect("bundled sample")
    }

    #[test]
    fn segments_built_ahead_are_the_same_segments_in_the_same_order() {
        let mut db = sample();
        for dt in DataType::ALL {
            let mut one_by_one = Vec::new();
            stream_segments(&db, dt, None, false, 2, |seg, last| {
                one_by_one.push((seg, last));
                Ok(())
            })
            .expect("stream");
            let mut ahead = Vec::new();
            stream_segments_ahead(&mut db, dt, (None, false), 2, |seg, last| {
                ahead.push((seg, last));
                Ok(())
            })
            .expect("stream ahead");
            assert!(one_by_one.len() > 1, "{dt:?}: several segments");
            assert_eq!(ahead, one_by_one, "{dt:?}");
        }
    }

    #[test]
    fn a_failed_send_stops_building_and_is_the_error_returned() {
        let mut db = sample();
        let mut emitted = 0;
        let result = stream_segments_ahead(
            &mut db,
            DataType::InstalledApplications,
            (None, false),
            1,
            |_, _| {
                emitted += 1;
                if emitted == 2 {
                    return Err(ExportError::Export {
                        data_type: "installed applications",
                        reason: "the instance refused it".into(),
                    });
                }
                Ok(())
            },
        );
        let error = result.expect_err("the send failed").to_string();
        assert!(error.contains("the instance refused it"), "{error}");
        assert_eq!(emitted, 2, "nothing is emitted after the failure");
    }

    #[test]
    fn empty_segment_is_a_bare_root() {
        let segment = SegmentWriter::new(DataType::Contracts).finish();
        assert_eq!(segment.records, 0);
        assert_eq!(
            segment.xml,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Contracts>\n</Contracts>\n"
        );
    }

    #[test]
    fn nulls_are_omitted_and_money_has_two_decimals() {
        let mut writer = SegmentWriter::new(DataType::Contracts);
        let mut values = vec![
            FieldValue::Integer(7),
            FieldValue::Text(Cow::Borrowed("C-7")),
            FieldValue::Text(Cow::Borrowed("A & B")),
            FieldValue::Null,
            FieldValue::Null,
            FieldValue::Null,
            FieldValue::Null,
            FieldValue::Integer(5),
        ]
        .into_iter();
        writer.push_record(&mut values);
        let segment = writer.finish();
        assert_eq!(
            segment.xml,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Contracts>\n  <Contract>\n    \
             <ContractID>7</ContractID>\n    <ContractNo>C-7</ContractNo>\n    \
             <ContractName>A &amp; B</ContractName>\n    <Value>5.00</Value>\n  \
             </Contract>\n</Contracts>\n"
        );
    }
}
