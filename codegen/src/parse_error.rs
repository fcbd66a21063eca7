//! Turning protobuf-parse's errors into `path:line:column: reason`.
//!
//! protobuf-parse (3.7) reports errors as a chain, for example
//!
//! ```text
//! using pure parser
//!   error in `proto/a.proto`: at 5:1: While parsing field, expecting char `;`
//!     at 5:1: While parsing field, expecting char `;`
//!       While parsing field, expecting char `;`
//! ```
//!
//! Syntax errors carry `at line:col`, but type-checking errors do not (`object is not found by
//! path `Nope` in scope `.a.M``), so for those the name is looked up in the file to find the
//! line.

use std::error::Error as StdError;
use std::path::Path;

use crate::error::{Error, ErrorKind};

/// Converts protobuf-parse's error chain into one `path:line:column: reason` message.
/// `inputs` are searched for the `import` line when an import cannot be found.
pub(crate) fn from_protobuf_parse(error: &(dyn StdError + 'static), inputs: &[&Path]) -> Error {
    let chain: Vec<String> = std::iter::successors(Some(error), |&error| error.source())
        .map(ToString::to_string)
        .collect();
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let message = match missing_import(&chain) {
        Some(import) => inputs
            .iter()
            .find_map(|input| {
                let input = input.to_str()?;
                let (line, col) = find_word(&read(input)?, &format!("\"{import}\""))?;
                Some(format!(
                    "{input}:{line}:{col}: cannot find import `{import}` ({})",
                    chain.last()?
                ))
            })
            .unwrap_or_else(|| describe(&chain, read)),
        None => describe(&chain, read),
    };
    Error::new(ErrorKind::Parse, message)
}

/// The import named by `protobuf path `x.proto` is not found in import path ...`.
fn missing_import(chain: &[String]) -> Option<&str> {
    let rest = chain.last()?.strip_prefix("protobuf path `")?;
    let (import, rest) = rest.split_once('`')?;
    rest.starts_with(" is not found in import path")
        .then_some(import)
}

/// Builds the message from the chain's messages (outermost first); `read` loads a file's text.
fn describe(chain: &[String], read: impl Fn(&str) -> Option<String>) -> String {
    // The innermost message is the bare reason; outer ones repeat it with prefixes.
    let reason = chain.last().map(String::as_str).unwrap_or("unknown error");
    let file = chain.iter().find_map(|message| {
        let rest = message.strip_prefix("error in `")?;
        Some(rest[..rest.find("`: ")?].to_owned())
    });
    let Some(file) = file else {
        // Not about one file's content (a missing file or import): the reason says it all.
        return reason.to_owned();
    };
    let location = chain.iter().find_map(|message| location_in(message));
    let (location, reason) = match location {
        Some(location) => (Some(location), reason.to_owned()),
        None => {
            let (name, reason) = match not_found(reason) {
                Some((name, scope)) => (
                    Some(name),
                    format!("unknown type `{name}` (looked up in scope `{scope}`)"),
                ),
                None => (first_quoted(reason), reason.to_owned()),
            };
            let location = name.and_then(|name| find_word(&read(&file)?, name));
            (location, reason)
        }
    };
    match location {
        Some((line, col)) => format!("{file}:{line}:{col}: {reason}"),
        None => format!("{file}: {reason}"),
    }
}

/// `at 5:1: ...`, alone or after `: `, -> (5, 1).
fn location_in(message: &str) -> Option<(usize, usize)> {
    let rest = message
        .strip_prefix("at ")
        .or_else(|| message.split_once(": at ").map(|(_, rest)| rest))?;
    let (position, _) = rest.split_once(": ")?;
    let (line, col) = position.split_once(':')?;
    Some((line.parse().ok()?, col.parse().ok()?))
}

/// `object is not found by path `X` in scope `S`` -> (X, S).
fn not_found(reason: &str) -> Option<(&str, &str)> {
    let rest = reason.strip_prefix("object is not found by path `")?;
    let (name, rest) = rest.split_once('`')?;
    let scope = rest
        .strip_prefix(" in scope `")
        .and_then(|rest| rest.split_once('`'))
        .map_or("", |(scope, _)| scope);
    Some((name, scope))
}

fn first_quoted(reason: &str) -> Option<&str> {
    let (_, rest) = reason.split_once('`')?;
    Some(rest.split_once('`')?.0).filter(|name| !name.is_empty())
}

/// 1-based line and column of the first whole-word occurrence of `word` outside `//`
/// comments.
fn find_word(source: &str, word: &str) -> Option<(usize, usize)> {
    let is_ident = |c: char| c.is_alphanumeric() || c == '_' || c == '.';
    for (index, line) in source.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let mut from = 0;
        while let Some(found) = code[from..].find(word) {
            let start = from + found;
            let end = start + word.len();
            let before = code[..start].chars().next_back();
            let after = code[end..].chars().next();
            if !before.is_some_and(is_ident) && !after.is_some_and(is_ident) {
                return Some((index + 1, code[..start].chars().count() + 1));
            }
            from = end;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(messages: &[&str]) -> Vec<String> {
        messages.iter().map(|message| message.to_string()).collect()
    }

    #[test]
    fn syntax_error_keeps_location() {
        let message = describe(
            &chain(&[
                "using pure parser",
                "error in `p/a.proto`: at 5:1: While parsing field, expecting char `;`",
                "at 5:1: While parsing field, expecting char `;`",
                "While parsing field, expecting char `;`",
            ]),
            |_| None,
        );
        assert_eq!(
            message,
            "p/a.proto:5:1: While parsing field, expecting char `;`"
        );
    }

    #[test]
    fn unknown_type_is_located_in_the_source() {
        let source = "syntax = \"proto3\";\n// Nope here is a comment\nmessage M {\n  Nopes y = 2;\n  Nope x = 1;\n}\n";
        let message = describe(
            &chain(&[
                "using pure parser",
                "error in `a.proto`: object is not found by path `Nope` in scope `.a.M`",
                "object is not found by path `Nope` in scope `.a.M`",
            ]),
            |_| Some(source.to_owned()),
        );
        assert_eq!(
            message,
            "a.proto:5:3: unknown type `Nope` (looked up in scope `.a.M`)"
        );
    }

    #[test]
    fn errors_without_a_file_keep_the_reason() {
        let message = describe(
            &chain(&[
                "using pure parser",
                "protobuf path `x.proto` is not found in import path [\"p\"]",
            ]),
            |_| None,
        );
        assert_eq!(
            message,
            "protobuf path `x.proto` is not found in import path [\"p\"]"
        );
    }
}
