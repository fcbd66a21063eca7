//! A method's limit as given to the server: a number, or a limiter by name.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use super::constant::ConstantLimiter;
use super::{
    AutoLimiter, AutoLimiterOptions, ConcurrencyLimiter, TimeoutLimiter, TimeoutLimiterOptions,
};
use crate::Error;

/// A method's limit: brpc's `AdaptiveMaxConcurrency`. Made from a number (`0`: no limit), or
/// parsed from brpc's names: a number, `"unlimited"`, `"constant"`-style numbers, `"auto"`,
/// `"timeout"` (any case).
///
/// ```
/// use brisk::limiter::MaxConcurrency;
///
/// assert!(matches!(MaxConcurrency::from(0), MaxConcurrency::Unlimited));
/// assert!(matches!("120".parse::<MaxConcurrency>(), Ok(MaxConcurrency::Constant(120))));
/// assert!(matches!("AUTO".parse::<MaxConcurrency>(), Ok(MaxConcurrency::Auto(_))));
/// assert!("fast".parse::<MaxConcurrency>().is_err());
/// ```
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum MaxConcurrency {
    /// No limit.
    #[default]
    Unlimited,
    /// At most this many at once (brpc's "constant" limiter).
    Constant(usize),
    /// brpc's adaptive limiter: see [`AutoLimiter`].
    Auto(AutoLimiterOptions),
    /// Refuse what would miss its deadline: see [`TimeoutLimiter`].
    Timeout(TimeoutLimiterOptions),
    /// A limiter of your own; give each method its own instance.
    Custom(Arc<dyn ConcurrencyLimiter>),
}

impl MaxConcurrency {
    /// A new limiter for one method (`None` when unlimited).
    pub(crate) fn limiter(&self) -> Option<Arc<dyn ConcurrencyLimiter>> {
        match self {
            MaxConcurrency::Unlimited | MaxConcurrency::Constant(0) => None,
            MaxConcurrency::Constant(max) => Some(Arc::new(ConstantLimiter(*max))),
            MaxConcurrency::Auto(options) => Some(Arc::new(AutoLimiter::new(options.clone()))),
            MaxConcurrency::Timeout(options) => {
                Some(Arc::new(TimeoutLimiter::new(options.clone())))
            }
            MaxConcurrency::Custom(limiter) => Some(Arc::clone(limiter)),
        }
    }
}

impl From<usize> for MaxConcurrency {
    /// `0` is no limit; `N`, at most N at once.
    fn from(max: usize) -> Self {
        match max {
            0 => MaxConcurrency::Unlimited,
            max => MaxConcurrency::Constant(max),
        }
    }
}

impl FromStr for MaxConcurrency {
    type Err = Error;

    /// brpc's spellings: a number (0 or less: no limit), `unlimited`, `auto`, `timeout`, in
    /// any case; anything else is EINVAL.
    fn from_str(value: &str) -> Result<Self, Error> {
        let value = value.trim();
        if let Ok(max) = value.parse::<i64>() {
            return Ok(MaxConcurrency::from(usize::try_from(max).unwrap_or(0)));
        }
        match value.to_ascii_lowercase().as_str() {
            "unlimited" => Ok(MaxConcurrency::Unlimited),
            "auto" => Ok(MaxConcurrency::Auto(AutoLimiterOptions::default())),
            "timeout" => Ok(MaxConcurrency::Timeout(TimeoutLimiterOptions::default())),
            _ => Err(Error::invalid(format!(
                "unknown max_concurrency `{value}`: a number, unlimited, auto or timeout"
            ))),
        }
    }
}

impl fmt::Debug for MaxConcurrency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MaxConcurrency::Unlimited => f.write_str("Unlimited"),
            MaxConcurrency::Constant(max) => f.debug_tuple("Constant").field(max).finish(),
            MaxConcurrency::Auto(options) => f.debug_tuple("Auto").field(options).finish(),
            MaxConcurrency::Timeout(options) => f.debug_tuple("Timeout").field(options).finish(),
            MaxConcurrency::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

impl fmt::Display for MaxConcurrency {
    /// brpc's names: `unlimited`, the number, `auto`, `timeout`, `custom`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MaxConcurrency::Unlimited | MaxConcurrency::Constant(0) => f.write_str("unlimited"),
            MaxConcurrency::Constant(max) => write!(f, "{max}"),
            MaxConcurrency::Auto(_) => f.write_str("auto"),
            MaxConcurrency::Timeout(_) => f.write_str("timeout"),
            MaxConcurrency::Custom(_) => f.write_str("custom"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_as_brpc_spells_them() {
        for (text, shown) in [
            ("0", "unlimited"),
            ("-3", "unlimited"),
            ("unlimited", "unlimited"),
            ("Unlimited", "unlimited"),
            ("17", "17"),
            (" 17 ", "17"),
            ("auto", "auto"),
            ("TIMEOUT", "timeout"),
        ] {
            let parsed: MaxConcurrency = text.parse().unwrap();
            assert_eq!(parsed.to_string(), shown, "{text}");
        }
        let unknown = "gradient".parse::<MaxConcurrency>().unwrap_err();
        assert_eq!(unknown.code(), crate::errno::EINVAL);
        assert!(unknown.to_string().contains("`gradient`"), "{unknown}");
    }

    #[test]
    fn constant_admits_up_to_its_number() {
        let limiter = MaxConcurrency::from(2).limiter().unwrap();
        assert!(limiter.on_requested(1, None));
        assert!(limiter.on_requested(2, None));
        assert!(!limiter.on_requested(3, None));
        assert_eq!(limiter.max_concurrency(), 2);
        assert!(MaxConcurrency::from(0).limiter().is_none());
    }
}
