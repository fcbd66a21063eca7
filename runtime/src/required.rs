//! proto2's required fields, checked on the wire as brpc's protobuf does.
//!
//! prost decodes a proto2 message whose required field is absent as if the field held its
//! default; protobuf's C++ parser (brpc's) refuses it: "missing required fields". A
//! [`RequiredFields`] is built once from a method's descriptors and walks the encoded
//! request's tags: no allocation, and nothing at all for messages that cannot hold a required
//! field (every proto3 message), which build no rules.

use std::collections::HashMap;
use std::fmt::Write as _;

/// The descriptor subset the rules need, decoded with prost (unknown fields are skipped).
mod descriptor {
    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct FileDescriptorSet {
        #[prost(message, repeated, tag = "1")]
        pub file: Vec<FileDescriptorProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct FileDescriptorProto {
        #[prost(string, optional, tag = "2")]
        pub package: Option<String>,
        #[prost(message, repeated, tag = "4")]
        pub message_type: Vec<DescriptorProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct DescriptorProto {
        #[prost(string, optional, tag = "1")]
        pub name: Option<String>,
        #[prost(message, repeated, tag = "2")]
        pub field: Vec<FieldDescriptorProto>,
        #[prost(message, repeated, tag = "3")]
        pub nested_type: Vec<DescriptorProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct FieldDescriptorProto {
        #[prost(string, optional, tag = "1")]
        pub name: Option<String>,
        #[prost(int32, optional, tag = "3")]
        pub number: Option<i32>,
        #[prost(int32, optional, tag = "4")]
        pub label: Option<i32>,
        #[prost(int32, optional, tag = "5")]
        pub r#type: Option<i32>,
        #[prost(string, optional, tag = "6")]
        pub type_name: Option<String>,
    }

    /// `FieldDescriptorProto.Label.LABEL_REQUIRED`.
    pub(super) const LABEL_REQUIRED: i32 = 2;
    /// `FieldDescriptorProto.Label.LABEL_REPEATED`.
    pub(super) const LABEL_REPEATED: i32 = 3;
    /// `FieldDescriptorProto.Type.TYPE_MESSAGE`.
    pub(super) const TYPE_MESSAGE: i32 = 11;
}

/// Nesting deeper than this is not checked (protobuf's own recursion limit is 100).
const MAX_DEPTH: usize = 100;

/// Which fields a message and the messages inside it must carry.
#[derive(Debug)]
pub(crate) struct RequiredFields {
    /// One entry per message type that needs checking; the request's message is first.
    messages: Vec<Rules>,
}

#[derive(Debug, Default)]
struct Rules {
    /// `(number, name)` of the required fields (the first 64 of a message are checked;
    /// groups are stepped over, not looked into).
    required: Vec<(u32, String)>,
    /// Message-typed fields whose messages need checking.
    nested: Vec<Nested>,
}

#[derive(Debug)]
struct Nested {
    number: u32,
    name: String,
    repeated: bool,
    /// The index of the field's message type's rules.
    rules: usize,
}

impl RequiredFields {
    /// The rules for `message` (a full name, `example.EchoRequest`) from an encoded
    /// `FileDescriptorSet`; `None` when the message cannot hold a required field, or is not
    /// described there.
    pub(crate) fn new(file_descriptor_set: &[u8], message: &str) -> Option<RequiredFields> {
        use prost::Message;
        let set = descriptor::FileDescriptorSet::decode(file_descriptor_set).ok()?;
        let mut by_name = HashMap::new();
        for file in &set.file {
            let package = file.package.as_deref().unwrap_or("");
            for message in &file.message_type {
                index_messages(package, message, &mut by_name);
            }
        }
        // Every message type reachable from the request, in the order first met.
        let mut order: Vec<&str> = vec![message];
        let mut position: HashMap<&str, usize> = HashMap::from([(message, 0)]);
        let mut rules: Vec<Rules> = Vec::new();
        let mut next = 0;
        while next < order.len() {
            let descriptor: &descriptor::DescriptorProto = by_name.get(order[next]).copied()?;
            let mut message_rules = Rules::default();
            for field in &descriptor.field {
                let number = u32::try_from(field.number.unwrap_or(0)).unwrap_or(0);
                let name = field.name.clone().unwrap_or_default();
                if field.label == Some(descriptor::LABEL_REQUIRED) {
                    message_rules.required.push((number, name.clone()));
                }
                if field.r#type == Some(descriptor::TYPE_MESSAGE) {
                    let type_name = field.type_name.as_deref().unwrap_or("");
                    let type_name = type_name.strip_prefix('.').unwrap_or(type_name);
                    if !by_name.contains_key(type_name) {
                        continue;
                    }
                    let index = *position.entry(type_name).or_insert_with(|| {
                        order.push(type_name);
                        order.len() - 1
                    });
                    message_rules.nested.push(Nested {
                        number,
                        name,
                        repeated: field.label == Some(descriptor::LABEL_REPEATED),
                        rules: index,
                    });
                }
            }
            message_rules.required.truncate(64);
            rules.push(message_rules);
            next += 1;
        }
        // Which messages hold a required field somewhere inside: to a fixed point, since
        // messages may nest themselves.
        let mut needs: Vec<bool> = rules.iter().map(|r| !r.required.is_empty()).collect();
        loop {
            let mut changed = false;
            for (i, r) in rules.iter().enumerate() {
                if !needs[i] && r.nested.iter().any(|n| needs[n.rules]) {
                    needs[i] = true;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        if !needs[0] {
            return None;
        }
        for r in &mut rules {
            r.nested.retain(|n| needs[n.rules]);
        }
        Some(RequiredFields { messages: rules })
    }

    /// The required fields `encoded` (a well-formed encoding of the message) lacks, named as
    /// protobuf names them (`message, header.id, items[2].name`); `None` when none is missing.
    /// Each occurrence of a singular message field is checked alone (parsers merge repeated
    /// occurrences of one; encoders never split a message so).
    pub(crate) fn missing(&self, encoded: &[u8]) -> Option<String> {
        let mut missing = String::new();
        self.check(0, encoded, &mut String::new(), &mut missing, 0);
        (!missing.is_empty()).then_some(missing)
    }

    /// Reports what message `rules` lacks in `bytes`: its own fields first, then those of the
    /// messages inside it, in the order protobuf reports them.
    fn check(&self, rules: usize, bytes: &[u8], path: &mut String, out: &mut String, depth: usize) {
        let rules = &self.messages[rules];
        let mut seen: u64 = 0;
        let mut walk = bytes;
        while let Some((number, _, _)) = next_field(&mut walk) {
            if let Some(i) = rules.required.iter().position(|&(n, _)| n == number) {
                seen |= 1 << i;
            }
        }
        for (i, (_, name)) in rules.required.iter().enumerate() {
            if seen & (1 << i) == 0 {
                if !out.is_empty() {
                    out.push_str(", ");
                }
                if !path.is_empty() {
                    out.push_str(path);
                    out.push('.');
                }
                out.push_str(name);
            }
        }
        if rules.nested.is_empty() || depth >= MAX_DEPTH {
            return;
        }
        // How many elements of each repeated message field were met, to name them.
        let mut elements: Vec<(u32, usize)> = Vec::new();
        let mut walk = bytes;
        while let Some((number, wire_type, value)) = next_field(&mut walk) {
            if wire_type != 2 {
                continue;
            }
            let Some(nested) = rules.nested.iter().find(|n| n.number == number) else {
                continue;
            };
            let len = path.len();
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(&nested.name);
            if nested.repeated {
                let count = match elements.iter_mut().find(|(n, _)| *n == number) {
                    Some((_, count)) => {
                        *count += 1;
                        *count
                    }
                    None => {
                        elements.push((number, 0));
                        0
                    }
                };
                let _ = write!(path, "[{count}]");
            }
            self.check(nested.rules, value, path, out, depth + 1);
            path.truncate(len);
        }
    }
}

/// The next field of an encoding: its number, wire type and (length-delimited) value. `None`
/// at the end, or where the encoding is malformed.
fn next_field<'b>(bytes: &mut &'b [u8]) -> Option<(u32, u8, &'b [u8])> {
    if bytes.is_empty() {
        return None;
    }
    let key = read_varint(bytes)?;
    let (number, wire_type) = ((key >> 3) as u32, (key & 7) as u8);
    let value = skip_value(bytes, wire_type, number, 0)?;
    Some((number, wire_type, value))
}

/// Records every message type under `package` by full name.
fn index_messages<'d>(
    scope: &str,
    message: &'d descriptor::DescriptorProto,
    by_name: &mut HashMap<String, &'d descriptor::DescriptorProto>,
) {
    let name = message.name.as_deref().unwrap_or("");
    let full = if scope.is_empty() {
        name.to_owned()
    } else {
        format!("{scope}.{name}")
    };
    for nested in &message.nested_type {
        index_messages(&full, nested, by_name);
    }
    by_name.insert(full, message);
}

fn read_varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first()?;
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// Steps over one field's value; for a length-delimited one, returns its bytes. Groups nest
/// at most [`MAX_DEPTH`] deep (`depth` is this one's).
fn skip_value<'b>(
    bytes: &mut &'b [u8],
    wire_type: u8,
    number: u32,
    depth: usize,
) -> Option<&'b [u8]> {
    let take = |bytes: &mut &'b [u8], n: usize| -> Option<&'b [u8]> {
        if bytes.len() < n {
            return None;
        }
        let (value, rest) = bytes.split_at(n);
        *bytes = rest;
        Some(value)
    };
    match wire_type {
        0 => read_varint(bytes).map(|_| &[][..]),
        1 => take(bytes, 8),
        2 => {
            let len = usize::try_from(read_varint(bytes)?).ok()?;
            take(bytes, len)
        }
        3 => {
            // A group: everything up to its end tag.
            if depth >= MAX_DEPTH {
                return None;
            }
            loop {
                let key = read_varint(bytes)?;
                let (inner, inner_type) = ((key >> 3) as u32, (key & 7) as u8);
                if inner_type == 4 {
                    return (inner == number).then_some(&[][..]);
                }
                skip_value(bytes, inner_type, inner, depth + 1)?;
            }
        }
        5 => take(bytes, 4),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::descriptor::*;
    use super::*;
    use prost::Message;

    fn field(name: &str, number: i32, label: i32, type_name: Option<&str>) -> FieldDescriptorProto {
        FieldDescriptorProto {
            name: Some(name.into()),
            number: Some(number),
            label: Some(label),
            r#type: Some(if type_name.is_some() { TYPE_MESSAGE } else { 9 }),
            type_name: type_name.map(Into::into),
        }
    }

    const OPTIONAL: i32 = 1;

    /// `p.Req { required string id = 1; optional Head head = 2; repeated Item items = 3;
    /// optional Req next = 4; message Item { required string name = 1; } }`,
    /// `p.Head { required int64 at = 1; }`, `p.Plain { optional string s = 1; }`.
    fn descriptors() -> Vec<u8> {
        let item = DescriptorProto {
            name: Some("Item".into()),
            field: vec![field("name", 1, LABEL_REQUIRED, None)],
            nested_type: vec![],
        };
        let req = DescriptorProto {
            name: Some("Req".into()),
            field: vec![
                field("id", 1, LABEL_REQUIRED, None),
                field("head", 2, OPTIONAL, Some(".p.Head")),
                field("items", 3, LABEL_REPEATED, Some(".p.Req.Item")),
                field("next", 4, OPTIONAL, Some(".p.Req")),
            ],
            nested_type: vec![item],
        };
        let head = DescriptorProto {
            name: Some("Head".into()),
            field: vec![field("at", 1, LABEL_REQUIRED, None)],
            nested_type: vec![],
        };
        let plain = DescriptorProto {
            name: Some("Plain".into()),
            field: vec![field("s", 1, OPTIONAL, None)],
            nested_type: vec![],
        };
        FileDescriptorSet {
            file: vec![FileDescriptorProto {
                package: Some("p".into()),
                message_type: vec![req, head, plain],
            }],
        }
        .encode_to_vec()
    }

    fn len_field(number: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![number << 3 | 2, body.len() as u8];
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn messages_without_required_fields_build_no_rules() {
        assert!(RequiredFields::new(&descriptors(), "p.Plain").is_none());
        assert!(RequiredFields::new(&descriptors(), "p.Unknown").is_none());
        assert!(RequiredFields::new(b"\xff not descriptors", "p.Req").is_none());
    }

    #[test]
    fn missing_fields_are_named_with_their_paths() {
        let rules = RequiredFields::new(&descriptors(), "p.Req").unwrap();
        assert_eq!(rules.missing(b"").as_deref(), Some("id"));
        let id = len_field(1, b"x");
        assert_eq!(rules.missing(&id), None);
        // A nested message and repeated elements are checked, and named by position.
        let mut message = id.clone();
        message.extend(len_field(2, b""));
        message.extend(len_field(3, &len_field(1, b"a")));
        message.extend(len_field(3, b""));
        assert_eq!(
            rules.missing(&message).as_deref(),
            Some("head.at, items[1].name")
        );
        // A message nesting itself is checked at every level.
        let mut outer = id.clone();
        outer.extend(len_field(4, &len_field(4, b"")));
        assert_eq!(
            rules.missing(&outer).as_deref(),
            Some("next.id, next.next.id")
        );
        // Scalars of other wire types (varint 8, fixed32, fixed64) are stepped over.
        let mut scalars = vec![
            0x28, 0x96, 0x01, 0x35, 1, 2, 3, 4, 0x39, 1, 2, 3, 4, 5, 6, 7, 8,
        ];
        scalars.extend(&id);
        assert_eq!(rules.missing(&scalars), None);
    }

    #[test]
    fn deeply_nested_groups_end_the_walk_instead_of_the_stack() {
        let rules = RequiredFields::new(&descriptors(), "p.Req").unwrap();
        // 100k group starts (field 1, wire type 3): never closed, never recursed into deeper
        // than MAX_DEPTH.
        let deep = vec![0x0b; 100_000];
        let _ = rules.missing(&deep);
    }

    #[test]
    fn truncated_input_stops_the_walk_without_panicking() {
        let rules = RequiredFields::new(&descriptors(), "p.Req").unwrap();
        for bad in [
            &b"\x0a\x05ab"[..],
            b"\xff\xff\xff",
            b"\x0f",
            b"\x1b\x08\x01",
        ] {
            let _ = rules.missing(bad);
        }
    }
}
