//! Generated code compiles without a warning in a crate that denies warnings and uses almost
//! none of it, as tonic's does: a `.proto` package from `build.rs` (messages, an enum, a oneof,
//! a map, a service with unary and streaming methods) and a `#[brisk::service]` trait. This
//! file is the test: `cargo test` builds it with `#![deny(warnings)]`, so a generated item that
//! warns (`dead_code` for an unused client, server or message, say) fails the build.

#![deny(warnings)]

mod generated {
    brisk::include_proto!("brisk.lints");
}

mod by_macro {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Ping {
        #[prost(string, tag = "1")]
        pub text: String,
    }

    /// A service defined in Rust, never served or called.
    #[brisk::service]
    pub trait Pinger {
        async fn ping(&self, request: Ping) -> Result<Ping, brisk::Status>;
    }
}

#[test]
fn a_crate_that_uses_one_message_builds_without_warnings() {
    let shape = generated::Shape::default();
    assert!(shape.kind.is_none());
    let ping = by_macro::Ping::default();
    assert!(ping.text.is_empty());
}
