//! Leading comments of services and methods, read straight from `.proto` source.
//!
//! protobuf-parse's pure parser never fills `source_code_info`, so prost sees no comments.
//! This small scanner recovers the comments that matter for the generated stubs: the comment
//! block directly above a `service` and above each `rpc` (same rules as protoc: the block must
//! touch the item, a blank line detaches it, and a comment that follows other tokens on its
//! line is a trailing comment of that earlier item).

use std::collections::HashMap;

/// Comments of one service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ServiceComments {
    /// Lines of the comment above `service`.
    pub(crate) leading: Vec<String>,
    /// Method proto name -> lines of the comment above its `rpc`.
    pub(crate) methods: HashMap<String, Vec<String>>,
}

/// Comments of all scanned services, keyed by (package, service proto name).
#[derive(Debug, Clone, Default)]
pub(crate) struct ProtoComments {
    services: HashMap<(String, String), ServiceComments>,
}

impl ProtoComments {
    /// Scans one `.proto` file whose package is `package`.
    pub(crate) fn add_file(&mut self, package: &str, source: &str) {
        for (name, comments) in scan(source) {
            self.services.insert((package.to_owned(), name), comments);
        }
    }

    /// The comments of a service, if the scanner saw it.
    pub(crate) fn service(&self, package: &str, name: &str) -> Option<&ServiceComments> {
        self.services.get(&(package.to_owned(), name.to_owned()))
    }
}

#[derive(Debug)]
enum Token {
    Comment {
        start: usize,
        end: usize,
        lines: Vec<String>,
    },
    Word(String, usize),
    Symbol(char, usize),
}

fn tokenize(source: &str) -> Vec<Token> {
    let chars: Vec<char> = source.chars().collect();
    let mut tokens = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\n' => {
                line += 1;
                i += 1;
            }
            c if c.is_whitespace() => i += 1,
            '/' if chars.get(i + 1) == Some(&'/') => {
                let start = i + 2;
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                tokens.push(Token::Comment {
                    start: line,
                    end: line,
                    lines: vec![text],
                });
            }
            '/' if chars.get(i + 1) == Some(&'*') => {
                let start_line = line;
                let start = i + 2;
                i = start;
                while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                    if chars[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
                let text: String = chars[start..i.min(chars.len())].iter().collect();
                i += 2;
                tokens.push(Token::Comment {
                    start: start_line,
                    end: line,
                    lines: block_comment_lines(&text),
                });
            }
            '"' | '\'' => {
                let quote = c;
                i += 1;
                while i < chars.len() && chars[i] != quote {
                    if chars[i] == '\\' {
                        i += 1;
                    } else if chars[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
                i += 1;
                tokens.push(Token::Symbol('"', line));
            }
            c if c.is_alphanumeric() || c == '_' || c == '.' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '.')
                {
                    i += 1;
                }
                tokens.push(Token::Word(chars[start..i].iter().collect(), line));
            }
            c => {
                tokens.push(Token::Symbol(c, line));
                i += 1;
            }
        }
    }
    tokens
}

/// The lines of a `/* ... */` comment body, with the conventional leading `*` removed.
fn block_comment_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text
        .lines()
        .enumerate()
        .map(|(index, line)| {
            let trimmed = line.trim_start();
            if index == 0 {
                line.strip_prefix('*').unwrap_or(line).to_owned()
            } else if let Some(rest) = trimmed.strip_prefix('*') {
                rest.to_owned()
            } else {
                line.to_owned()
            }
        })
        .collect();
    while lines.first().is_some_and(|line| line.trim().is_empty()) {
        lines.remove(0);
    }
    while lines.last().is_some_and(|line| line.trim().is_empty()) {
        lines.pop();
    }
    lines
}

/// The comment block attached to an item starting on `line`, from the comments seen since
/// the previous token.
fn leading(pending: &[(usize, usize, &[String])], line: usize) -> Vec<String> {
    let mut first = pending.len();
    let mut next_start = line;
    for (index, &(start, end, _)) in pending.iter().enumerate().rev() {
        if end + 1 < next_start {
            break;
        }
        first = index;
        next_start = start;
    }
    pending[first..]
        .iter()
        .flat_map(|(_, _, lines)| lines.iter().cloned())
        .collect()
}

/// Service name -> comments, for every service in `source`.
fn scan(source: &str) -> Vec<(String, ServiceComments)> {
    let tokens = tokenize(source);
    let mut services = Vec::new();
    let mut pending: Vec<(usize, usize, &[String])> = Vec::new();
    let mut previous_line = 0;
    let mut depth = 0usize;
    // (index into `services`, depth of the service body)
    let mut current: Option<(usize, usize)> = None;
    let mut i = 0;
    while i < tokens.len() {
        match &tokens[i] {
            Token::Comment { start, end, lines } => {
                // A comment after other tokens on the same line trails that earlier item.
                if *start != previous_line {
                    pending.push((*start, *end, lines));
                }
                i += 1;
                continue;
            }
            Token::Word(word, line) => {
                let name = match tokens.get(i + 1) {
                    Some(Token::Word(name, _)) => Some(name.clone()),
                    _ => None,
                };
                match (word.as_str(), name) {
                    ("service", Some(name)) if depth == 0 => {
                        services.push((
                            name,
                            ServiceComments {
                                leading: leading(&pending, *line),
                                methods: HashMap::new(),
                            },
                        ));
                        current = Some((services.len() - 1, depth + 1));
                    }
                    ("rpc", Some(name)) => {
                        if let Some((index, body)) = current {
                            if depth == body {
                                services[index]
                                    .1
                                    .methods
                                    .insert(name, leading(&pending, *line));
                            }
                        }
                    }
                    _ => {}
                }
                previous_line = *line;
            }
            Token::Symbol(symbol, line) => {
                match symbol {
                    '{' => depth += 1,
                    '}' => {
                        depth = depth.saturating_sub(1);
                        if current.is_some_and(|(_, body)| depth < body) {
                            current = None;
                        }
                    }
                    _ => {}
                }
                previous_line = *line;
            }
        }
        pending.clear();
        i += 1;
    }
    services
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_service_and_method_comments() {
        let source = r#"
syntax = "proto3";
package example; // trailing, ignored

// Detached, ignored.

// Echoes messages back.
// Second line.
service EchoService {
  /* The one method. */
  rpc Echo(EchoRequest) returns (EchoResponse); // trailing of Echo
  rpc Quiet(EchoRequest) returns (EchoResponse) { option deprecated = true; }
  /**
   * Block
   * comment.
   */
  rpc Block(EchoRequest) returns (EchoResponse);
}
message M { string rpc = 1; }
"#;
        let mut comments = ProtoComments::default();
        comments.add_file("example", source);
        let service = comments.service("example", "EchoService").unwrap();
        assert_eq!(service.leading, [" Echoes messages back.", " Second line."]);
        assert_eq!(service.methods["Echo"], [" The one method. "]);
        assert!(service.methods["Quiet"].is_empty());
        assert_eq!(service.methods["Block"], [" Block", " comment."]);
        assert_eq!(service.methods.len(), 3);
        assert!(comments.service("other", "EchoService").is_none());
    }

    #[test]
    fn strings_do_not_confuse_the_scanner() {
        let source = "option go_package = \"a//b { service X\";\n// Doc.\nservice S {}\n";
        let services = scan(source);
        assert_eq!(services.len(), 1);
        assert_eq!(services[0].0, "S");
        assert_eq!(services[0].1.leading, [" Doc."]);
    }
}
