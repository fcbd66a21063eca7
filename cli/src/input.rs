//! Requests given as JSON on the command line, in a file or on stdin: one object, an array of
//! objects, or objects one after another (JSON lines), each checked against the request type.

use prost_reflect::{DynamicMessage, MessageDescriptor, ReflectMessage as _};
use serde_json::Value;

/// Reads requests of type `desc` from JSON `text`: one object, an array of objects, or objects
/// one after another (one per line, as JSON lines). Errors name the bad entry (1-based, with
/// its line outside arrays).
pub fn parse_input(text: &str, desc: &MessageDescriptor) -> Result<Vec<DynamicMessage>, String> {
    let mut entries: Vec<(String, Value)> = Vec::new();
    if text.trim_start().starts_with('[') {
        let array: Vec<Value> = serde_json::from_str(text)
            .map_err(|e| format!("input is not a JSON array of objects: {e}"))?;
        for (i, value) in array.into_iter().enumerate() {
            entries.push((format!("entry {} (array element {})", i + 1, i + 1), value));
        }
    } else {
        let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
        loop {
            let before = stream.byte_offset();
            let entry = entries.len() + 1;
            match stream.next() {
                None => break,
                Some(Ok(value)) => {
                    let start = before
                        + text[before..]
                            .find(|c: char| !c.is_whitespace())
                            .unwrap_or(0);
                    let line = text[..start].matches('\n').count() + 1;
                    entries.push((format!("entry {entry} (line {line})"), value));
                }
                Some(Err(e)) => {
                    return Err(format!(
                        "input entry {entry} (line {}): invalid JSON: {e}",
                        e.line()
                    ))
                }
            }
        }
    }
    if entries.is_empty() {
        return Err("input has no requests (expected JSON objects)".into());
    }
    entries
        .into_iter()
        .map(|(entry, value)| {
            if !value.is_object() {
                return Err(format!(
                    "input {entry}: expected a JSON object for {}, found {}",
                    desc.full_name(),
                    kind(&value)
                ));
            }
            let message = DynamicMessage::deserialize(desc.clone(), value)
                .map_err(|e| format!("input {entry}: not a valid {}: {e}", desc.full_name()))?;
            if let Some(missing) = missing_required(&message, "") {
                return Err(format!(
                    "input {entry}: {} is missing required field `{missing}`",
                    desc.full_name()
                ));
            }
            Ok(message)
        })
        .collect()
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The path of the first proto2 `required` field that is not set, here or in nested messages.
fn missing_required(message: &DynamicMessage, prefix: &str) -> Option<String> {
    use prost_reflect::Value as V;
    for field in message.descriptor().fields() {
        let path = format!("{prefix}{}", field.name());
        if field.is_required() && !message.has_field(&field) {
            return Some(path);
        }
        if !message.has_field(&field) {
            continue;
        }
        let nested = |value: &V| match value {
            V::Message(inner) => missing_required(inner, &format!("{path}.")),
            _ => None,
        };
        let found = match &*message.get_field(&field) {
            V::List(items) => items.iter().find_map(nested),
            V::Map(entries) => entries.values().find_map(nested),
            value => nested(value),
        };
        if found.is_some() {
            return found;
        }
    }
    None
}

/// The text of `path`, or of stdin when `path` is `-`.
pub fn read(path: &std::path::Path) -> Result<String, String> {
    if path.as_os_str() == "-" {
        return std::io::read_to_string(std::io::stdin())
            .map_err(|e| format!("cannot read the requests from stdin: {e}"));
    }
    std::fs::read_to_string(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::schema::Schema;

    fn messages(text: &str) -> Result<Vec<String>, String> {
        let proto = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/proto/echo.proto");
        let schema = Schema::from_proto_file(&proto, &[]).unwrap();
        let method = schema.method("example.EchoService.Echo").unwrap();
        let parsed = parse_input(text, &method.input())?;
        Ok(parsed
            .iter()
            .map(|m| {
                m.get_field_by_name("message")
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect())
    }

    #[test]
    fn one_object() {
        assert_eq!(messages(r#" {"message": "hi"} "#).unwrap(), ["hi"]);
        let pretty = "{\n  \"message\": \"multi\"\n}\n";
        assert_eq!(messages(pretty).unwrap(), ["multi"]);
    }

    #[test]
    fn an_array_of_objects() {
        assert_eq!(
            messages(r#"[{"message": "a"}, {"message": "b"}]"#).unwrap(),
            ["a", "b"]
        );
        let error = messages(r#"[{"message": "a"}, {"mesage": "b"}]"#).unwrap_err();
        assert!(error.contains("entry 2 (array element 2)"), "{error}");
        assert!(error.contains("mesage"), "{error}");
        let error = messages(r#"[{"message": "a"}, 3]"#).unwrap_err();
        assert!(
            error.contains("entry 2") && error.contains("a number"),
            "{error}"
        );
        let error = messages(r#"[{"message": "a"},"#).unwrap_err();
        assert!(error.contains("not a JSON array"), "{error}");
    }

    #[test]
    fn json_lines() {
        let text = "{\"message\": \"1\"}\n{\"message\": \"2\"}\n\n{\"message\": \"3\"}\n";
        assert_eq!(messages(text).unwrap(), ["1", "2", "3"]);
        let error = messages("{\"message\": \"1\"}\n{\"message\": 2}\n").unwrap_err();
        assert!(error.contains("entry 2 (line 2)"), "{error}");
        let error = messages("{\"message\": \"1\"}\n\n{\"message\": \"2\"\n").unwrap_err();
        assert!(error.contains("entry 2 (line 4)"), "{error}");
        assert!(error.contains("invalid JSON"), "{error}");
    }

    #[test]
    fn required_fields_and_emptiness_are_checked() {
        let error = messages("{}").unwrap_err();
        assert!(
            error.contains("missing required field `message`"),
            "{error}"
        );
        let error = messages("  \n").unwrap_err();
        assert!(error.contains("no requests"), "{error}");
    }
}
