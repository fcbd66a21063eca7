//! The plugin's options: the `--rpc_opt=…` string, parsed with protoc-gen-prost's grammar.
//!
//! protoc joins every `--rpc_opt` (and the `opts:` prefix of `--rpc_out`) into one string,
//! separated by commas. Each item is `name`, `name=value` or `name=key=value`; in values, `\,`
//! stands for a comma and `\\` for a backslash (any other backslash is kept as is). A boolean
//! given as a bare `name` is true; `name=true` and `name=false` are accepted too. An unknown
//! option is an error.

use std::fmt;

use brisk_codegen::model::DEFAULT_CODEC_PATH;
use brisk_codegen::{EmitOptions, ProstOptions};

/// Every option name, for error messages and documentation.
pub const OPTION_NAMES: &[&str] = &[
    "client",
    "server",
    "blocking_client",
    "codec_path",
    "extern_path",
    "bytes",
    "btree_map",
    "boxed",
    "type_attribute",
    "field_attribute",
    "message_attribute",
    "enum_attribute",
    "compile_well_known_types",
    "disable_comments",
    "skip_debug",
    "retain_enum_prefix",
    "enable_type_names",
    "type_name_domain",
    "prost_path",
    "prost_types_path",
    "default_package_filename",
];

/// A bad option string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionError {
    message: String,
}

impl OptionError {
    fn new(message: impl Into<String>) -> Self {
        OptionError {
            message: message.into(),
        }
    }
}

impl fmt::Display for OptionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for OptionError {}

/// The parsed options of one plugin run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Which Brisk parts to emit (`client`, `server`, `blocking_client`; all on by default).
    pub emit: EmitOptions,
    /// Rust path of the stubs' codec (`codec_path`).
    pub codec_path: String,
    /// prost's pass-throughs (`extern_path`, `bytes`, `btree_map`, attributes, ...).
    pub prost: ProstOptions,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            emit: EmitOptions::default(),
            codec_path: DEFAULT_CODEC_PATH.to_owned(),
            prost: ProstOptions::default(),
        }
    }
}

/// One `name[=value]` item, its value unescaped.
struct Item {
    name: String,
    value: Option<String>,
}

impl Item {
    fn bool(&self) -> Result<bool, OptionError> {
        match self.value.as_deref() {
            None | Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(other) => Err(OptionError::new(format!(
                "option `{}` is a switch: write `{0}`, `{0}=true` or `{0}=false`, not `{0}={other}`",
                self.name
            ))),
        }
    }

    fn value(&self, what: &str) -> Result<String, OptionError> {
        match &self.value {
            Some(value) if !value.is_empty() => Ok(value.clone()),
            _ => Err(OptionError::new(format!(
                "option `{}` needs a value: `{0}={what}`",
                self.name
            ))),
        }
    }

    fn key_value(&self, what: &str) -> Result<(String, String), OptionError> {
        let value = self.value(what)?;
        match value.split_once('=') {
            Some((key, value)) if !key.is_empty() && !value.is_empty() => {
                Ok((key.to_owned(), value.to_owned()))
            }
            _ => Err(OptionError::new(format!(
                "option `{}` needs a key and a value: `{0}={what}`, got `{0}={value}`",
                self.name
            ))),
        }
    }
}

/// Splits `parameter` on unescaped commas and unescapes each item. Empty items are skipped.
fn split(parameter: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut current = String::new();
    let mut chars = parameter.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.peek() {
                Some(&next @ (',' | '\\')) => {
                    current.push(next);
                    chars.next();
                }
                _ => current.push('\\'),
            },
            ',' => items.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    items.push(current);
    items.retain(|item| !item.trim().is_empty());
    items
}

impl Options {
    /// Parses the plugin parameter (`CodeGeneratorRequest.parameter`).
    pub fn parse(parameter: &str) -> Result<Options, OptionError> {
        let mut options = Options::default();
        for raw in split(parameter) {
            let (name, value) = match raw.split_once('=') {
                Some((name, value)) => (name.trim().to_owned(), Some(value.to_owned())),
                None => (raw.trim().to_owned(), None),
            };
            options.apply(&Item { name, value })?;
        }
        Ok(options)
    }

    fn apply(&mut self, item: &Item) -> Result<(), OptionError> {
        const ATTR: &str = ".path=#[attribute]";
        match item.name.as_str() {
            "client" => self.emit.client = item.bool()?,
            "server" => self.emit.server = item.bool()?,
            "blocking_client" => self.emit.blocking_client = item.bool()?,
            "codec_path" => self.codec_path = item.value("::rust::Codec")?,
            "extern_path" => self
                .prost
                .extern_paths
                .push(item.key_value(".proto.path=::rust::path")?),
            "bytes" => self.prost.bytes.push(item.value(".path")?),
            "btree_map" => self.prost.btree_map.push(item.value(".path")?),
            "boxed" => self.prost.boxed.push(item.value(".path")?),
            "type_attribute" => self.prost.type_attributes.push(item.key_value(ATTR)?),
            "field_attribute" => self.prost.field_attributes.push(item.key_value(ATTR)?),
            "message_attribute" => self.prost.message_attributes.push(item.key_value(ATTR)?),
            "enum_attribute" => self.prost.enum_attributes.push(item.key_value(ATTR)?),
            "compile_well_known_types" => self.prost.compile_well_known_types = item.bool()?,
            "disable_comments" => self.prost.disable_comments.push(item.value(".path")?),
            "skip_debug" => self.prost.skip_debug.push(item.value(".path")?),
            "retain_enum_prefix" => self.prost.retain_enum_prefix = item.bool()?,
            "enable_type_names" => self.prost.enable_type_names = item.bool()?,
            "type_name_domain" => self
                .prost
                .type_name_domains
                .push(item.key_value(".path=domain")?),
            "prost_path" => self.prost.prost_path = Some(item.value("::prost")?),
            "prost_types_path" => self.prost.prost_types_path = Some(item.value("::prost_types")?),
            "default_package_filename" => {
                self.prost.default_package_filename = item.value("name")?;
            }
            other => {
                return Err(OptionError::new(format!(
                    "unknown option `{other}`; known options: {}",
                    OPTION_NAMES.join(", ")
                )))
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_parameter_gives_defaults() {
        assert_eq!(Options::parse("").unwrap(), Options::default());
        assert_eq!(Options::parse(",,").unwrap(), Options::default());
        let defaults = Options::default();
        assert_eq!(defaults.emit, EmitOptions::default());
        assert_eq!(defaults.codec_path, DEFAULT_CODEC_PATH);
    }

    #[test]
    fn switches_accept_bare_true_and_false() {
        let options = Options::parse("client=false,server=false,blocking_client").unwrap();
        assert!(!options.emit.client);
        assert!(!options.emit.server);
        assert!(options.emit.blocking_client);

        let options = Options::parse("server=true,compile_well_known_types").unwrap();
        assert!(options.emit.server);
        assert!(options.prost.compile_well_known_types);

        let error = Options::parse("client=no").unwrap_err().to_string();
        assert!(error.contains("`client=false`"), "{error}");
        assert!(error.contains("`client=no`"), "{error}");
    }

    #[test]
    fn key_values_split_on_the_first_equals_sign() {
        let options = Options::parse(
            "extern_path=.google.protobuf=::pbjson_types,\
             type_attribute=.pkg.Msg=#[serde(rename = \"x\")]",
        )
        .unwrap();
        assert_eq!(
            options.prost.extern_paths,
            [(".google.protobuf".to_owned(), "::pbjson_types".to_owned())]
        );
        assert_eq!(
            options.prost.type_attributes,
            [(".pkg.Msg".to_owned(), "#[serde(rename = \"x\")]".to_owned())]
        );
    }

    #[test]
    fn escapes_keep_commas_and_backslashes() {
        let options = Options::parse(
            r"type_attribute=.=#[derive(Eq\, Hash)],field_attribute=.a.b=#[doc = 'x\\y\n'],bytes=.",
        )
        .unwrap();
        assert_eq!(
            options.prost.type_attributes,
            [(".".to_owned(), "#[derive(Eq, Hash)]".to_owned())]
        );
        assert_eq!(
            options.prost.field_attributes,
            [(".a.b".to_owned(), r"#[doc = 'x\y\n']".to_owned())]
        );
        assert_eq!(options.prost.bytes, ["."]);
    }

    #[test]
    fn repeated_options_accumulate() {
        let options =
            Options::parse("bytes=.a,bytes=.b,btree_map=.,codec_path=::my::Codec").unwrap();
        assert_eq!(options.prost.bytes, [".a", ".b"]);
        assert_eq!(options.prost.btree_map, ["."]);
        assert_eq!(options.codec_path, "::my::Codec");
    }

    #[test]
    fn unknown_option_is_an_error() {
        let error = Options::parse("client,frobnicate=1")
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("unknown option `frobnicate`"), "{error}");
        assert!(error.contains("blocking_client"), "{error}");
    }

    #[test]
    fn missing_values_are_errors() {
        let error = Options::parse("bytes").unwrap_err().to_string();
        assert!(error.contains("needs a value"), "{error}");
        let error = Options::parse("extern_path=.foo").unwrap_err().to_string();
        assert!(error.contains("needs a key and a value"), "{error}");
        let error = Options::parse("type_attribute=.foo=")
            .unwrap_err()
            .to_string();
        assert!(error.contains("needs a key and a value"), "{error}");
    }

    #[test]
    fn every_known_option_is_accepted() {
        for name in OPTION_NAMES {
            let item = match *name {
                "client"
                | "server"
                | "blocking_client"
                | "compile_well_known_types"
                | "retain_enum_prefix"
                | "enable_type_names" => (*name).to_owned(),
                "extern_path" | "type_attribute" | "field_attribute" | "message_attribute"
                | "enum_attribute" | "type_name_domain" => format!("{name}=.a=b"),
                _ => format!("{name}=x"),
            };
            let options = Options::parse(&item).unwrap_or_else(|e| panic!("{item}: {e}"));
            let _ = options.prost.config();
        }
    }
}
