//! tower interop (feature `tower`): [`ServerBuilder::layer`](crate::ServerBuilder::layer)
//! wraps hosted services' unary calls in tower middleware, whose innermost service is a
//! [`BriskService`] taking [`ServiceRequest`]s.

pub use crate::server::tower::{BriskService, ServiceRequest};
