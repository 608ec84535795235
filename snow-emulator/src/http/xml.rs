//! XML bodies for the REST APIs (`Accept` / `Content-Type: application/xml`), in
//! ServiceNow's shape: `<response><result>…</result></response>` with one child element per
//! field (a list repeats `<result>`), and requests as `<request><entry>…</entry></request>`
//! or any root whose child elements are the fields.

use quick_xml::Reader;
use quick_xml::events::Event;
use serde_json::{Map, Value};

/// Escapes text for element content.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// Element names are field names from the catalog (lowercase identifiers, dots for
/// dot-walks); anything else is written as `<field name="…">`.
fn element(out: &mut String, name: &str, value: &Value) {
    let plain = !name.is_empty()
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-');
    let (open, close) = if plain {
        (format!("<{name}>"), format!("</{name}>"))
    } else {
        (
            format!("<field name=\"{}\">", escape(name).replace('"', "&quot;")),
            "</field>".to_owned(),
        )
    };
    match value {
        Value::Array(items) => {
            for item in items {
                element(out, name, item);
            }
        }
        Value::Object(map) => {
            out.push_str(&open);
            for (k, v) in map {
                element(out, k, v);
            }
            out.push_str(&close);
        }
        Value::String(s) => {
            out.push_str(&open);
            out.push_str(&escape(s));
            out.push_str(&close);
        }
        Value::Null => {
            out.push_str(&open);
            out.push_str(&close);
        }
        other => {
            out.push_str(&open);
            out.push_str(&escape(&other.to_string()));
            out.push_str(&close);
        }
    }
}

/// A JSON response body (`{"result": …}` or the error envelope) as XML.
pub fn to_xml(body: &Value) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?><response>");
    if let Value::Object(map) = body {
        for (k, v) in map {
            element(&mut out, k, v);
        }
    }
    out.push_str("</response>");
    out
}

struct Node {
    name: String,
    text: String,
    children: Vec<Node>,
}

/// Parses a request body into a JSON object of field → text.
pub fn from_xml(text: &str) -> Result<Value, String> {
    let mut reader = Reader::from_str(text);
    reader.config_mut().expand_empty_elements = true;
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Node> = Vec::new();
    let mut root: Option<Node> = None;
    loop {
        match reader.read_event().map_err(|e| e.to_string())? {
            Event::Start(e) => {
                if root.is_some() || stack.len() > 16 {
                    return Err("unexpected element".into());
                }
                stack.push(Node {
                    name: String::from_utf8_lossy(e.name().as_ref()).into_owned(),
                    text: String::new(),
                    children: Vec::new(),
                });
            }
            Event::End(_) => {
                let node = stack.pop().ok_or("unbalanced element")?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => root = Some(node),
                }
            }
            Event::Text(t) => {
                let s = t.decode().map_err(|e| e.to_string())?;
                if let Some(n) = stack.last_mut() {
                    n.text.push_str(&s);
                }
            }
            Event::CData(t) => {
                let s = t.decode().map_err(|e| e.to_string())?;
                if let Some(n) = stack.last_mut() {
                    n.text.push_str(&s);
                }
            }
            Event::GeneralRef(r) => {
                let c = if r.is_char_ref() {
                    r.resolve_char_ref().ok().flatten().ok_or("bad reference")?
                } else {
                    match r.decode().map_err(|e| e.to_string())?.as_ref() {
                        "amp" => '&',
                        "lt" => '<',
                        "gt" => '>',
                        "apos" => '\'',
                        "quot" => '"',
                        _ => return Err("entities are not allowed".into()),
                    }
                };
                if let Some(n) = stack.last_mut() {
                    n.text.push(c);
                }
            }
            Event::DocType(_) => return Err("DOCTYPE declarations are not allowed".into()),
            Event::Eof => break,
            _ => {}
        }
    }
    let mut node = root.ok_or("no root element")?;
    // <request><entry>…</entry></request>: the record is the only element with children.
    while node.children.len() == 1 && !node.children[0].children.is_empty() {
        node = node.children.remove(0);
    }
    let mut map = Map::new();
    for child in node.children {
        map.insert(child.name, Value::String(child.text));
    }
    Ok(Value::Object(map))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn responses_and_requests_round_trip() {
        let body = json!({"result": [{"name": "a & b", "ref": {"link": "l", "value": "v"}}, {"name": "c"}]});
        assert_eq!(
            to_xml(&body),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><response><result><name>a &amp; b</name><ref><link>l</link><value>v</value></ref></result><result><name>c</name></result></response>"
        );
        let parsed = from_xml("<request><entry><name>x &amp; y</name><n>1</n></entry></request>")
            .expect("xml");
        assert_eq!(parsed, json!({"name": "x & y", "n": "1"}));
        assert!(from_xml("<!DOCTYPE x [<!ENTITY a 'b'>]><x/>").is_err());
    }
}
