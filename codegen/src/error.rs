//! The crate's error type.

use std::fmt;

/// What went wrong, for callers that want to react differently to different failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A `.proto` file could not be read, parsed or type-checked.
    Parse,
    /// The input uses something Brisk cannot generate.
    Unsupported,
    /// The model is not valid Rust: clashing method names or an unparsable type path.
    InvalidModel,
    /// Writing the generated code failed (prost-build's own I/O or configuration errors).
    Io,
}

/// An error from code generation. `Display` gives a message meant for a human reading a
/// failed build (for `.proto` problems: `path:line:column: reason`); several problems found in
/// one run are reported together, one per line. `Debug` prints the same text, so a build script
/// that returns the error from `main` shows a readable message.
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "brisk-codegen {:?} error:\n{}", self.kind, self.message)?;
        if let Some(source) = &self.source {
            write!(f, "\ncaused by: {source}")?;
        }
        Ok(())
    }
}

impl Error {
    /// An error of the given kind with a message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            source: None,
        }
    }

    pub(crate) fn with_source(
        kind: ErrorKind,
        message: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        Error {
            kind,
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// Joins several errors into one; its kind is the first error's. `None` when empty.
    pub fn combine(errors: impl IntoIterator<Item = Error>) -> Option<Error> {
        let mut iter = errors.into_iter();
        let mut first = iter.next()?;
        for error in iter {
            first.message.push('\n');
            first.message.push_str(&error.message);
        }
        Some(first)
    }

    /// What kind of error this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message, as printed by `Display`.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|source| source as &(dyn std::error::Error + 'static))
    }
}

impl From<std::io::Error> for Error {
    fn from(error: std::io::Error) -> Self {
        Error::with_source(ErrorKind::Io, error.to_string(), error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combine_joins_messages() {
        assert!(Error::combine(Vec::new()).is_none());
        let error = Error::combine([
            Error::new(ErrorKind::Unsupported, "a"),
            Error::new(ErrorKind::InvalidModel, "b"),
        ])
        .unwrap();
        assert_eq!(error.to_string(), "a\nb");
        assert_eq!(error.kind(), ErrorKind::Unsupported);
    }
}
