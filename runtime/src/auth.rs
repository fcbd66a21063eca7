//! Authentication, as brpc's `Authenticator`: the client attaches a credential, the server
//! verifies it and hands the verified identity to handlers.
//!
//! On baidu_std the credential travels in `RpcMeta.authentication_data` of the first request
//! on each connection and is verified once per connection; on HTTP and gRPC it travels in the
//! `authorization` header of every request and is verified per request. A credential that
//! fails verification gets ERPCAUTH (1004) and, on baidu_std, the connection closed.
//!
//! ```
//! use std::net::SocketAddr;
//! use brisk::{AuthContext, Authenticator, Status};
//!
//! /// A shared secret; the identity is the part before the colon.
//! #[derive(Debug)]
//! struct Token(&'static str);
//!
//! impl Authenticator for Token {
//!     fn generate_credential(&self) -> Result<String, Status> {
//!         Ok(self.0.to_owned())
//!     }
//!     fn verify_credential(&self, credential: &str, _client: SocketAddr) -> Result<AuthContext, Status> {
//!         match credential.split_once(':') {
//!             Some((user, secret)) if secret == "s3cret" => {
//!                 Ok(AuthContext { user: user.to_owned(), ..AuthContext::default() })
//!             }
//!             _ => Err(Status::new(brisk::errno::ERPCAUTH, "bad token")),
//!         }
//!     }
//! }
//! let auth = Token("alice:s3cret");
//! let credential = auth.generate_credential().unwrap();
//! let who = auth.verify_credential(&credential, "127.0.0.1:1".parse().unwrap()).unwrap();
//! assert_eq!(who.user, "alice");
//! ```

use std::fmt;
use std::net::SocketAddr;

use crate::{errno, Status};

/// Generates credentials on the client and verifies them on the server. One type usually does
/// both, shared by a [`ChannelBuilder`](crate::ChannelBuilder) and a
/// [`ServerBuilder`](crate::ServerBuilder).
pub trait Authenticator: fmt::Debug + Send + Sync + 'static {
    /// The credential a client sends (brpc's `GenerateCredential`).
    fn generate_credential(&self) -> Result<String, Status>;

    /// Checks a credential a client sent from `client`; the identity on success (brpc's
    /// `VerifyCredential`). Any error is reported to the client as ERPCAUTH.
    fn verify_credential(
        &self,
        credential: &str,
        client: SocketAddr,
    ) -> Result<AuthContext, Status>;
}

/// Who a verified client is, as brpc's `AuthContext`; handlers read it with
/// [`ServerContext::auth_context`](crate::ServerContext::auth_context).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthContext {
    /// The user the credential names.
    pub user: String,
    /// The user's group.
    pub group: String,
    /// The user's roles, in the authenticator's own format.
    pub roles: String,
    /// Who started the calling process.
    pub starter: String,
    /// Whether the client is a service rather than a person.
    pub is_service: bool,
}

/// The credential `authenticator` generates for a request; its failure is ERPCAUTH.
pub(crate) fn generate_credential(authenticator: &dyn Authenticator) -> Result<String, Status> {
    authenticator.generate_credential().map_err(|e| {
        Status::new(
            errno::ERPCAUTH,
            format!("Fail to generate credential: {}", e.message()),
        )
    })
}
