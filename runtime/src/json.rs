//! Protobuf messages as JSON (protobuf's canonical JSON mapping, proto2 and proto3) for HTTP
//! bodies, by descriptor: what lets `curl -d '{"message":"hi"}'` call a pb method.
//!
//! A service's [`MessageSchema::Protobuf`](crate::MessageSchema::Protobuf) descriptor set is
//! decoded once, when the server starts ([`ServiceJson::new`]); each call then converts its
//! request from JSON to protobuf bytes and its response back ([`MethodJson`]).

use bytes::Bytes;
use prost::Message;
use prost_reflect::{
    Cardinality, DescriptorPool, DeserializeOptions, DynamicMessage, Kind, MessageDescriptor,
    ReflectMessage, SerializeOptions, Value,
};

/// Nesting depth past which required-field checks stop descending (protobuf decoding itself
/// bounds recursion; this only keeps the check cheap).
const MAX_CHECK_DEPTH: usize = 64;

/// The JSON mapping of one service's methods, parallel to its `method_names()`.
#[derive(Debug)]
pub(crate) struct ServiceJson {
    methods: Vec<Option<MethodJson>>,
}

impl ServiceJson {
    /// Decodes `file_descriptor_set` and finds service `full_name`'s methods in it. A method
    /// the descriptors do not describe gets no mapping (its calls accept protobuf only).
    pub(crate) fn new(
        file_descriptor_set: &[u8],
        full_name: &str,
        method_names: &[&str],
    ) -> Result<ServiceJson, String> {
        let pool = DescriptorPool::decode(file_descriptor_set)
            .map_err(|e| format!("bad file descriptor set: {e}"))?;
        let service = pool
            .get_service_by_name(full_name)
            .ok_or_else(|| format!("the file descriptor set does not describe {full_name}"))?;
        let methods = method_names
            .iter()
            .map(|name| {
                service
                    .methods()
                    .find(|m| m.name() == *name)
                    .map(|m| MethodJson {
                        input: m.input(),
                        output: m.output(),
                    })
            })
            .collect();
        Ok(ServiceJson { methods })
    }

    /// The mapping of method number `index`, if the descriptors describe it.
    pub(crate) fn method(&self, index: usize) -> Option<&MethodJson> {
        self.methods.get(index)?.as_ref()
    }
}

/// Converts one method's request from JSON and its response to JSON.
#[derive(Debug, Clone)]
pub(crate) struct MethodJson {
    input: MessageDescriptor,
    output: MessageDescriptor,
}

impl MethodJson {
    /// Whether the input message has no fields: brpc then serves the method as an HTTP
    /// service, its request body the request attachment.
    pub(crate) fn input_is_empty(&self) -> bool {
        self.input.fields().len() == 0
    }

    /// A request body in JSON → the protobuf encoding of the method's input message.
    /// Malformed JSON and missing proto2 `required` fields are errors; unknown fields are
    /// skipped, as brpc does, or errors when `strict`. An empty body is the empty message.
    pub(crate) fn request_to_proto(&self, json: &[u8], strict: bool) -> Result<Bytes, String> {
        json_to_proto(&self.input, json, strict)
    }

    /// A response's protobuf bytes → its JSON (field names in lowerCamelCase, default values
    /// left out, as protobuf's canonical mapping).
    pub(crate) fn response_to_json(&self, proto: Bytes) -> Result<Bytes, String> {
        proto_to_json(&self.output, proto)
    }

    /// A request body in protobuf's text format → the protobuf encoding of the input message;
    /// failure is brpc's text (`Fail to parse http proto-text body as example.EchoRequest`).
    #[cfg(feature = "proto-text")]
    pub(crate) fn request_from_text(&self, text: &[u8]) -> Result<Bytes, String> {
        let fail = |why: &dyn std::fmt::Display| {
            tracing::debug!("proto-text body of {}: {why}", self.input.full_name());
            format!(
                "Fail to parse http proto-text body as {}",
                self.input.full_name()
            )
        };
        let text = std::str::from_utf8(text).map_err(|e| fail(&e))?;
        // prost-reflect's text parser recurses without a limit: refuse deep nesting first, as
        // protobuf's parser does past 100 levels.
        let depth = text_format_depth(text);
        if depth > MAX_TEXT_DEPTH {
            return Err(fail(&format_args!("nested {depth} deep")));
        }
        let message =
            DynamicMessage::parse_text_format(self.input.clone(), text).map_err(|e| fail(&e))?;
        check_required(&message, 0).map_err(|e| fail(&e))?;
        Ok(Bytes::from(message.encode_to_vec()))
    }

    /// A response's protobuf bytes → its text format, one field a line as protobuf's
    /// `TextFormat::Print` writes it.
    #[cfg(feature = "proto-text")]
    pub(crate) fn response_to_text(&self, proto: Bytes) -> Result<Bytes, String> {
        let message = DynamicMessage::decode(self.output.clone(), proto)
            .map_err(|e| format!("Fail to parse {} as protobuf: {e}", self.output.full_name()))?;
        let options = prost_reflect::text_format::FormatOptions::new().pretty(true);
        let mut text = message.to_text_format_with_options(&options);
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        Ok(Bytes::from(text))
    }

    /// The client's side: method `service`.`method` as described by `file_descriptor_set`.
    pub(crate) fn for_client(
        file_descriptor_set: &[u8],
        service: &str,
        method: &str,
    ) -> Result<MethodJson, String> {
        ServiceJson::new(file_descriptor_set, service, &[method])?
            .methods
            .pop()
            .flatten()
            .ok_or_else(|| format!("the descriptors do not describe {service}.{method}"))
    }

    /// A request's protobuf bytes → its JSON body (the client's side).
    pub(crate) fn request_to_json(&self, proto: Bytes) -> Result<Bytes, String> {
        proto_to_json(&self.input, proto)
    }

    /// A JSON response body → the protobuf encoding of the output message (the client's
    /// side). Fields the client does not know are skipped, for servers newer than it.
    pub(crate) fn response_to_proto(&self, json: &[u8]) -> Result<Bytes, String> {
        let mut deserializer = serde_json::Deserializer::from_slice(json);
        let options = DeserializeOptions::new().deny_unknown_fields(false);
        let message = DynamicMessage::deserialize_with_options(
            self.output.clone(),
            &mut deserializer,
            &options,
        )
        .map_err(|e| format!("Fail to parse JSON as {}: {e}", self.output.full_name()))?;
        Ok(Bytes::from(message.encode_to_vec()))
    }
}

/// The deepest message nesting the text format may have (protobuf's default recursion limit).
#[cfg(feature = "proto-text")]
const MAX_TEXT_DEPTH: usize = 100;

/// How deep `{`/`<` nest in a text-format body, strings and `#` comments aside.
#[cfg(feature = "proto-text")]
fn text_format_depth(text: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '{' | '<' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            '}' | '>' => depth = depth.saturating_sub(1),
            '#' => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '"' | '\'' => {
                while let Some(inner) = chars.next() {
                    match inner {
                        '\\' => {
                            chars.next();
                        }
                        _ if inner == c => break,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    deepest
}

/// JSON → protobuf bytes of message type `desc`; an unknown field is an error when
/// `deny_unknown_fields`, else skipped.
fn json_to_proto(
    desc: &MessageDescriptor,
    json: &[u8],
    deny_unknown_fields: bool,
) -> Result<Bytes, String> {
    if json.iter().all(u8::is_ascii_whitespace) {
        let empty = DynamicMessage::new(desc.clone());
        check_required(&empty, 0)?;
        return Ok(Bytes::from(empty.encode_to_vec()));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    let options = DeserializeOptions::new().deny_unknown_fields(deny_unknown_fields);
    let message =
        DynamicMessage::deserialize_with_options(desc.clone(), &mut deserializer, &options)
            .map_err(|e| format!("Fail to parse JSON as {}: {e}", desc.full_name()))?;
    deserializer
        .end()
        .map_err(|e| format!("Fail to parse JSON as {}: {e}", desc.full_name()))?;
    check_required(&message, 0)?;
    Ok(Bytes::from(message.encode_to_vec()))
}

/// Protobuf bytes of message type `desc` → JSON.
fn proto_to_json(desc: &MessageDescriptor, proto: Bytes) -> Result<Bytes, String> {
    let message = DynamicMessage::decode(desc.clone(), proto)
        .map_err(|e| format!("Fail to parse {} as protobuf: {e}", desc.full_name()))?;
    let mut out = Vec::with_capacity(64);
    let mut serializer = serde_json::Serializer::new(&mut out);
    message
        .serialize_with_options(&mut serializer, &SerializeOptions::new())
        .map_err(|e| format!("Fail to write {} as JSON: {e}", desc.full_name()))?;
    Ok(Bytes::from(out))
}

/// Fails when a proto2 `required` field is missing, here or in nested messages (as brpc's
/// json2pb does).
fn check_required(message: &DynamicMessage, depth: usize) -> Result<(), String> {
    if depth > MAX_CHECK_DEPTH {
        return Ok(());
    }
    let desc = message.descriptor();
    for field in desc.fields() {
        if field.cardinality() == Cardinality::Required && !message.has_field(&field) {
            return Err(format!("Missing required field: {}", field.full_name()));
        }
    }
    for (field, value) in message.fields() {
        if !matches!(field.kind(), Kind::Message(_)) {
            continue;
        }
        match value {
            Value::Message(inner) => check_required(inner, depth + 1)?,
            Value::List(items) => {
                for item in items {
                    if let Value::Message(inner) = item {
                        check_required(inner, depth + 1)?;
                    }
                }
            }
            Value::Map(entries) => {
                for item in entries.values() {
                    if let Value::Message(inner) = item {
                        check_required(inner, depth + 1)?;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {

    #[cfg(feature = "proto-text")]
    #[test]
    fn text_format_depth_skips_strings_and_comments() {
        assert_eq!(text_format_depth(r#"a { b < c: "}}{{" > } # {{{"#), 2);
        assert_eq!(text_format_depth("x: 'it\\'s {'"), 0);
        assert_eq!(text_format_depth(&"a{".repeat(500)), 500);
    }
    use super::*;
    use prost_reflect::prost_types::{
        field_descriptor_proto::{Label, Type},
        DescriptorProto, FieldDescriptorProto, FileDescriptorProto, FileDescriptorSet,
        MethodDescriptorProto, ServiceDescriptorProto,
    };

    fn field(name: &str, number: i32, label: Label, ty: Type) -> FieldDescriptorProto {
        FieldDescriptorProto {
            name: Some(name.to_owned()),
            number: Some(number),
            label: Some(label as i32),
            r#type: Some(ty as i32),
            ..Default::default()
        }
    }

    fn message(name: &str, fields: Vec<FieldDescriptorProto>) -> DescriptorProto {
        DescriptorProto {
            name: Some(name.to_owned()),
            field: fields,
            ..Default::default()
        }
    }

    /// proto2 `example.EchoService` (required `message`) and proto3 `demo.Calc` (with a
    /// nested message and an int64).
    fn descriptor_set() -> Vec<u8> {
        let echo = FileDescriptorProto {
            name: Some("echo.proto".to_owned()),
            package: Some("example".to_owned()),
            syntax: Some("proto2".to_owned()),
            message_type: vec![
                message(
                    "EchoRequest",
                    vec![field("message", 1, Label::Required, Type::String)],
                ),
                message(
                    "EchoResponse",
                    vec![field("message", 1, Label::Required, Type::String)],
                ),
            ],
            service: vec![ServiceDescriptorProto {
                name: Some("EchoService".to_owned()),
                method: vec![MethodDescriptorProto {
                    name: Some("Echo".to_owned()),
                    input_type: Some(".example.EchoRequest".to_owned()),
                    output_type: Some(".example.EchoResponse".to_owned()),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let mut inner_ref = field("inner", 2, Label::Optional, Type::Message);
        inner_ref.type_name = Some(".demo.Inner".to_owned());
        let calc = FileDescriptorProto {
            name: Some("calc.proto".to_owned()),
            package: Some("demo".to_owned()),
            syntax: Some("proto3".to_owned()),
            message_type: vec![
                message(
                    "Inner",
                    vec![field("big_number", 1, Label::Optional, Type::Int64)],
                ),
                message(
                    "Outer",
                    vec![
                        field("user_name", 1, Label::Optional, Type::String),
                        inner_ref,
                    ],
                ),
            ],
            service: vec![ServiceDescriptorProto {
                name: Some("Calc".to_owned()),
                method: vec![MethodDescriptorProto {
                    name: Some("Same".to_owned()),
                    input_type: Some(".demo.Outer".to_owned()),
                    output_type: Some(".demo.Outer".to_owned()),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        FileDescriptorSet {
            file: vec![echo, calc],
        }
        .encode_to_vec()
    }

    fn echo() -> MethodJson {
        let set = descriptor_set();
        let service = ServiceJson::new(&set, "example.EchoService", &["Echo"]).unwrap();
        service.method(0).unwrap().clone()
    }

    #[test]
    fn echo_request_round_trips() {
        let echo = echo();
        let proto = echo
            .request_to_proto(br#"{"message":"hello world"}"#, true)
            .unwrap();
        assert_eq!(&proto[..], b"\x0a\x0bhello world");
        let json = echo.response_to_json(proto).unwrap();
        assert_eq!(&json[..], br#"{"message":"hello world"}"#);
    }

    #[test]
    fn rejects_bad_json_unknown_fields_and_missing_required() {
        let echo = echo();
        let malformed = echo.request_to_proto(b"{\"message\":", true).unwrap_err();
        assert!(malformed.contains("Fail to parse JSON"), "{malformed}");
        let unknown = echo
            .request_to_proto(br#"{"message":"x","extra":1}"#, true)
            .unwrap_err();
        assert!(unknown.contains("extra"), "{unknown}");
        // Not strict (brpc's way): the unknown field is skipped.
        let lenient = echo
            .request_to_proto(br#"{"message":"x","extra":1}"#, false)
            .unwrap();
        assert_eq!(&lenient[..], b"\x0a\x01x");
        let missing = echo.request_to_proto(b"{}", true).unwrap_err();
        assert!(missing.contains("example.EchoRequest.message"), "{missing}");
        let empty = echo.request_to_proto(b"  ", true).unwrap_err();
        assert!(empty.contains("Missing required"), "{empty}");
        let trailing = echo
            .request_to_proto(br#"{"message":"x"} {"#, true)
            .unwrap_err();
        assert!(trailing.contains("Fail to parse JSON"), "{trailing}");
        let wrong_type = echo
            .request_to_proto(br#"{"message":5}"#, true)
            .unwrap_err();
        assert!(wrong_type.contains("Fail to parse JSON"), "{wrong_type}");
        let response = echo.response_to_json(Bytes::from_static(b"\xff\xff"));
        assert!(response.is_err());
    }

    #[test]
    fn proto3_uses_the_canonical_mapping() {
        let set = descriptor_set();
        let calc = ServiceJson::new(&set, "demo.Calc", &["Same", "Missing"]).unwrap();
        assert!(
            calc.method(1).is_none(),
            "undescribed methods have no mapping"
        );
        assert!(calc.method(7).is_none());
        let same = calc.method(0).unwrap();
        // Both the proto name and the lowerCamelCase name are accepted.
        let proto = same
            .request_to_proto(
                br#"{"user_name":"ann","inner":{"bigNumber":"12345678901"}}"#,
                true,
            )
            .unwrap();
        let json = same.response_to_json(proto).unwrap();
        assert_eq!(
            std::str::from_utf8(&json).unwrap(),
            r#"{"userName":"ann","inner":{"bigNumber":"12345678901"}}"#
        );
        let empty = same.request_to_proto(b"", true).unwrap();
        assert!(empty.is_empty());
        assert_eq!(&same.response_to_json(empty).unwrap()[..], b"{}");
    }

    #[test]
    fn bad_descriptor_sets_are_errors() {
        assert!(ServiceJson::new(b"\xff\xff\xff", "a.B", &[]).is_err());
        let set = descriptor_set();
        let missing = ServiceJson::new(&set, "example.Nope", &["Echo"]).unwrap_err();
        assert!(missing.contains("example.Nope"), "{missing}");
    }
}
