//! A flag of the program's own on the `/flags` page
//! ([`ServerBuilder::flag`](crate::ServerBuilder::flag)).

/// Sets a flag of the program's own, or says why the value is refused.
pub(crate) type SetFlag = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// A flag of the program's own ([`ServerBuilder::flag`](crate::ServerBuilder::flag)).
pub(crate) struct UserFlag {
    pub(crate) name: String,
    pub(crate) what: String,
    /// Its value now.
    pub(crate) value: Box<dyn Fn() -> String + Send + Sync>,
    /// Sets it.
    pub(crate) set: SetFlag,
}

/// The names `/flags` gives the server's own options: a flag of the program's own may not take
/// one (it could be listed, but never set).
const BUILTIN_NAMES: &[&str] = &[
    "max_concurrency",
    "max_body_size",
    "max_connections",
    "first_bytes_timeout",
    "request_read_timeout",
    "idle_timeout",
    "builtin_services",
    "internal_port",
    "reflection",
    "enable_rpcz",
    "rpcz_max_spans_per_second",
    "rpcz_capacity",
];

/// Checks the program's flags' names: letters, digits, `_`, `-` and `.`, none a builtin
/// flag's or taken twice; why not otherwise.
pub(crate) fn check_names(flags: &[UserFlag]) -> Result<(), String> {
    let mut seen = std::collections::HashSet::new();
    for flag in flags {
        let name = flag.name.as_str();
        let fine = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if !fine {
            return Err(format!(
                "flag name `{name}' must be letters, digits, `_', `-' and `.'"
            ));
        }
        if BUILTIN_NAMES.contains(&name) || name.starts_with("max_concurrency_of(") {
            return Err(format!("flag name `{name}' is a builtin flag's"));
        }
        if !seen.insert(name) {
            return Err(format!("flag `{name}' is added twice"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flag(name: &str) -> UserFlag {
        UserFlag {
            name: name.to_owned(),
            what: String::new(),
            value: Box::new(String::new),
            set: Box::new(|_| Ok(())),
        }
    }

    #[test]
    fn names_are_checked() {
        assert_eq!(
            check_names(&[flag("log_level"), flag("cache.size-mb")]),
            Ok(())
        );
        for (flags, why) in [
            (
                vec![flag("")],
                "flag name `' must be letters, digits, `_', `-' and `.'",
            ),
            (
                vec![flag("a b")],
                "flag name `a b' must be letters, digits, `_', `-' and `.'",
            ),
            (
                vec![flag("enable_rpcz")],
                "flag name `enable_rpcz' is a builtin flag's",
            ),
            (vec![flag("x"), flag("x")], "flag `x' is added twice"),
        ] {
            assert_eq!(check_names(&flags), Err(why.to_owned()));
        }
    }
}
