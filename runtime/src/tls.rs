//! TLS with rustls: server certificates (SNI), client roots and server names.
