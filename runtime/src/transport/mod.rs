//! Sockets: the batching writer shared by clients and servers, and client connections that
//! multiplex many calls.

pub(crate) mod connection;
pub(crate) mod pending;
pub(crate) mod writer;

/// Smallest free space kept in a read buffer before reading, and the first buffer's size.
pub(crate) const READ_CHUNK: usize = 8 * 1024;
