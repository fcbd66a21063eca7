//! Descriptors written back as `.proto` source: what `/protobufs` shows and `brisk describe`
//! prints. Message and enum types are written by full name with a leading dot (as `protoc`'s
//! descriptors name them), so a definition reads the same wherever it is shown.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use prost_reflect::DescriptorPool;
//! use prost_reflect::prost_types::{
//!     field_descriptor_proto::Type, DescriptorProto, FieldDescriptorProto, FileDescriptorProto,
//!     FileDescriptorSet,
//! };
//! let file = FileDescriptorProto {
//!     name: Some("point.proto".into()),
//!     package: Some("geo".into()),
//!     syntax: Some("proto3".into()),
//!     message_type: vec![DescriptorProto {
//!         name: Some("Point".into()),
//!         field: vec![FieldDescriptorProto {
//!             name: Some("x".into()),
//!             number: Some(1),
//!             r#type: Some(Type::Int32 as i32),
//!             ..Default::default()
//!         }],
//!         ..Default::default()
//!     }],
//!     ..Default::default()
//! };
//! let pool = DescriptorPool::from_file_descriptor_set(FileDescriptorSet { file: vec![file] })?;
//! assert_eq!(
//!     brisk::proto_source::definition(&pool, "geo.Point").unwrap(),
//!     "message Point {\n  int32 x = 1;\n}\n"
//! );
//! # Ok(()) }
//! ```

use std::fmt::Write;

use prost_reflect::{
    Cardinality, DescriptorPool, EnumDescriptor, FieldDescriptor, Kind, MessageDescriptor,
    MethodDescriptor, ServiceDescriptor, Syntax,
};

/// The definition of `name` (a service, a method as `package.Service.Method`, a message or an
/// enum, by full name) as `.proto` source, or `None` when `pool` has no such symbol.
pub fn definition(pool: &DescriptorPool, name: &str) -> Option<String> {
    let mut out = String::new();
    if let Some(service) = pool.get_service_by_name(name) {
        write_service(&mut out, &service);
    } else if let Some(message) = pool.get_message_by_name(name) {
        write_message(&mut out, &message, 0);
    } else if let Some(enumeration) = pool.get_enum_by_name(name) {
        write_enum(&mut out, &enumeration, 0);
    } else if let Some(method) = name.rsplit_once('.').and_then(|(service, method)| {
        pool.get_service_by_name(service)?
            .methods()
            .find(|m| m.name() == method)
    }) {
        write_method(&mut out, &method, "");
    } else {
        return None;
    }
    Some(out)
}

fn write_service(out: &mut String, service: &ServiceDescriptor) {
    let _ = writeln!(out, "service {} {{", service.name());
    for method in service.methods() {
        write_method(out, &method, "  ");
    }
    out.push_str("}\n");
}

fn write_method(out: &mut String, method: &MethodDescriptor, pad: &str) {
    let stream = |on: bool| if on { "stream " } else { "" };
    let _ = writeln!(
        out,
        "{pad}rpc {}({}.{}) returns ({}.{});",
        method.name(),
        stream(method.is_client_streaming()),
        method.input().full_name(),
        stream(method.is_server_streaming()),
        method.output().full_name(),
    );
}

fn write_message(out: &mut String, message: &MessageDescriptor, depth: usize) {
    let pad = "  ".repeat(depth);
    let _ = writeln!(out, "{pad}message {} {{", message.name());
    for nested in message.child_messages().filter(|m| !m.is_map_entry()) {
        write_message(out, &nested, depth + 1);
    }
    for nested in message.child_enums() {
        write_enum(out, &nested, depth + 1);
    }
    let proto2 = message.parent_file().syntax() == Syntax::Proto2;
    for field in message.fields() {
        match field.containing_oneof() {
            Some(oneof) if !oneof.is_synthetic() => continue, // in its oneof below
            _ => write_field(out, &field, depth + 1, proto2),
        }
    }
    for oneof in message.oneofs().filter(|o| !o.is_synthetic()) {
        let _ = writeln!(out, "{pad}  oneof {} {{", oneof.name());
        for field in oneof.fields() {
            let _ = writeln!(
                out,
                "{pad}    {} {} = {};",
                type_name(&field),
                field.name(),
                field.number()
            );
        }
        let _ = writeln!(out, "{pad}  }}");
    }
    let _ = writeln!(out, "{pad}}}");
}

fn write_field(out: &mut String, field: &FieldDescriptor, depth: usize, proto2: bool) {
    let pad = "  ".repeat(depth);
    let label = if field.is_map() {
        ""
    } else {
        match field.cardinality() {
            Cardinality::Repeated => "repeated ",
            Cardinality::Required => "required ",
            Cardinality::Optional if proto2 => "optional ",
            Cardinality::Optional if field.field_descriptor_proto().proto3_optional() => {
                "optional "
            }
            Cardinality::Optional => "",
        }
    };
    let _ = writeln!(
        out,
        "{pad}{label}{} {} = {};",
        type_name(field),
        field.name(),
        field.number()
    );
}

fn write_enum(out: &mut String, enumeration: &EnumDescriptor, depth: usize) {
    let pad = "  ".repeat(depth);
    let _ = writeln!(out, "{pad}enum {} {{", enumeration.name());
    for value in enumeration.values() {
        let _ = writeln!(out, "{pad}  {} = {};", value.name(), value.number());
    }
    let _ = writeln!(out, "{pad}}}");
}

/// A field's type as `.proto` source writes it (message and enum types by full name).
fn type_name(field: &FieldDescriptor) -> String {
    if field.is_map() {
        if let Kind::Message(entry) = field.kind() {
            let key = entry.map_entry_key_field();
            let value = entry.map_entry_value_field();
            return format!("map<{}, {}>", type_name(&key), type_name(&value));
        }
    }
    match field.kind() {
        Kind::Double => "double".into(),
        Kind::Float => "float".into(),
        Kind::Int32 => "int32".into(),
        Kind::Int64 => "int64".into(),
        Kind::Uint32 => "uint32".into(),
        Kind::Uint64 => "uint64".into(),
        Kind::Sint32 => "sint32".into(),
        Kind::Sint64 => "sint64".into(),
        Kind::Fixed32 => "fixed32".into(),
        Kind::Fixed64 => "fixed64".into(),
        Kind::Sfixed32 => "sfixed32".into(),
        Kind::Sfixed64 => "sfixed64".into(),
        Kind::Bool => "bool".into(),
        Kind::String => "string".into(),
        Kind::Bytes => "bytes".into(),
        Kind::Message(message) => format!(".{}", message.full_name()),
        Kind::Enum(enumeration) => format!(".{}", enumeration.full_name()),
    }
}
