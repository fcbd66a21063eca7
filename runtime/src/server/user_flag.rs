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
