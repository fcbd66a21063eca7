//! The plugin's options: the `--rpc_opt=…` string, parsed with protoc-gen-prost's grammar.
//!
//! protoc joins every `--rpc_opt` (and the `opts:` prefix of `--rpc_out`) into one string,
//! separated by commas. Each item is `name`, `name=value` or `name=key=value`; in values, `\,`
//! stands for a comma and `\\` for a backslash (any other backslash is kept as is). A boolean
//! given as a bare `name` is true; `name=true` and `name=false` are accepted too. An unknown
//! option is an error.

use std::fmt;

use brisk_codegen::model::DEFAULT_CODEC_PATH;
use brisk_codegen::EmitOptions;

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
    /// `extern_path=.proto.path=::rust::path`, in order.
    pub extern_paths: Vec<(String, String)>,
    /// `bytes=.path`: `bytes::Bytes` for matching `bytes` fields.
    pub bytes: Vec<String>,
    /// `btree_map=.path`: `BTreeMap` for matching map fields.
    pub btree_map: Vec<String>,
    /// `boxed=.path`: `Box` matching fields.
    pub boxed: Vec<String>,
    /// `type_attribute=.path=#[attr]`.
    pub type_attributes: Vec<(String, String)>,
    /// `field_attribute=.path=#[attr]`.
    pub field_attributes: Vec<(String, String)>,
    /// `message_attribute=.path=#[attr]`.
    pub message_attributes: Vec<(String, String)>,
    /// `enum_attribute=.path=#[attr]`.
    pub enum_attributes: Vec<(String, String)>,
    /// `compile_well_known_types`: generate `google.protobuf` types instead of using
    /// `::prost_types`.
    pub compile_well_known_types: bool,
    /// `disable_comments=.path`: no doc comments on matching messages, enums and fields.
    pub disable_comments: Vec<String>,
    /// `skip_debug=.path`: no `Debug` derive on matching messages and enums.
    pub skip_debug: Vec<String>,
    /// `retain_enum_prefix`: keep enum variant prefixes.
    pub retain_enum_prefix: bool,
    /// `enable_type_names`: implement `prost::Name` for messages.
    pub enable_type_names: bool,
    /// `type_name_domain=.path=domain`.
    pub type_name_domains: Vec<(String, String)>,
    /// `prost_path=::path`: where the `prost` crate is.
    pub prost_path: Option<String>,
    /// `prost_types_path=::path`: where the `prost-types` crate is.
    pub prost_types_path: Option<String>,
    /// `default_package_filename=name`: file name (without `.rs`) for files with no package.
    pub default_package_filename: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            emit: EmitOptions::default(),
            codec_path: DEFAULT_CODEC_PATH.to_owned(),
            extern_paths: Vec::new(),
            bytes: Vec::new(),
            btree_map: Vec::new(),
            boxed: Vec::new(),
            type_attributes: Vec::new(),
            field_attributes: Vec::new(),
            message_attributes: Vec::new(),
            enum_attributes: Vec::new(),
            compile_well_known_types: false,
            disable_comments: Vec::new(),
            skip_debug: Vec::new(),
            retain_enum_prefix: false,
            enable_type_names: false,
            type_name_domains: Vec::new(),
            prost_path: None,
            prost_types_path: None,
            default_package_filename: "_".to_owned(),
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
                .extern_paths
                .push(item.key_value(".proto.path=::rust::path")?),
            "bytes" => self.bytes.push(item.value(".path")?),
            "btree_map" => self.btree_map.push(item.value(".path")?),
            "boxed" => self.boxed.push(item.value(".path")?),
            "type_attribute" => self.type_attributes.push(item.key_value(ATTR)?),
            "field_attribute" => self.field_attributes.push(item.key_value(ATTR)?),
            "message_attribute" => self.message_attributes.push(item.key_value(ATTR)?),
            "enum_attribute" => self.enum_attributes.push(item.key_value(ATTR)?),
            "compile_well_known_types" => self.compile_well_known_types = item.bool()?,
            "disable_comments" => self.disable_comments.push(item.value(".path")?),
            "skip_debug" => self.skip_debug.push(item.value(".path")?),
            "retain_enum_prefix" => self.retain_enum_prefix = item.bool()?,
            "enable_type_names" => self.enable_type_names = item.bool()?,
            "type_name_domain" => self.type_name_domains.push(item.key_value(".path=domain")?),
            "prost_path" => self.prost_path = Some(item.value("::prost")?),
            "prost_types_path" => self.prost_types_path = Some(item.value("::prost_types")?),
            "default_package_filename" => {
                self.default_package_filename = item.value("name")?;
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

    /// A prost-build configuration with these options (without the service generator).
    pub fn prost_config(&self) -> prost_build::Config {
        let mut config = prost_build::Config::new();
        // prost's formatter would drop the stubs' `// @generated by brisk-codegen` line; both
        // prost's messages and the stubs are laid out already.
        config.format(false);
        config.default_package_filename(&self.default_package_filename);
        for (proto_path, rust_path) in &self.extern_paths {
            config.extern_path(proto_path, rust_path);
        }
        // These setters replace earlier calls, so each gets all its paths at once.
        if !self.bytes.is_empty() {
            config.bytes(&self.bytes);
        }
        if !self.btree_map.is_empty() {
            config.btree_map(&self.btree_map);
        }
        if !self.disable_comments.is_empty() {
            config.disable_comments(&self.disable_comments);
        }
        if !self.skip_debug.is_empty() {
            config.skip_debug(&self.skip_debug);
        }
        for path in &self.boxed {
            config.boxed(path);
        }
        for (path, attribute) in &self.type_attributes {
            config.type_attribute(path, attribute);
        }
        for (path, attribute) in &self.field_attributes {
            config.field_attribute(path, attribute);
        }
        for (path, attribute) in &self.message_attributes {
            config.message_attribute(path, attribute);
        }
        for (path, attribute) in &self.enum_attributes {
            config.enum_attribute(path, attribute);
        }
        if self.compile_well_known_types {
            config.compile_well_known_types();
        }
        if self.retain_enum_prefix {
            config.retain_enum_prefix();
        }
        if self.enable_type_names {
            config.enable_type_names();
        }
        for (path, domain) in &self.type_name_domains {
            config.type_name_domain([path], domain);
        }
        if let Some(path) = &self.prost_path {
            config.prost_path(path);
        }
        if let Some(path) = &self.prost_types_path {
            config.prost_types_path(path);
        }
        config
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
        assert!(options.compile_well_known_types);

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
            options.extern_paths,
            [(".google.protobuf".to_owned(), "::pbjson_types".to_owned())]
        );
        assert_eq!(
            options.type_attributes,
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
            options.type_attributes,
            [(".".to_owned(), "#[derive(Eq, Hash)]".to_owned())]
        );
        assert_eq!(
            options.field_attributes,
            [(".a.b".to_owned(), r"#[doc = 'x\y\n']".to_owned())]
        );
        assert_eq!(options.bytes, ["."]);
    }

    #[test]
    fn repeated_options_accumulate() {
        let options =
            Options::parse("bytes=.a,bytes=.b,btree_map=.,codec_path=::my::Codec").unwrap();
        assert_eq!(options.bytes, [".a", ".b"]);
        assert_eq!(options.btree_map, ["."]);
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
            let _ = options.prost_config();
        }
    }
}
