//! Brisk's stubs for etcd's v3 API, generated from `runtime/proto/etcd/` by brisk-codegen
//! (the clients only). Not edited by hand, nor formatted: `BRISK_BLESS=1 cargo test -p
//! brisk-codegen --test snapshot etcd` writes them again, and that test fails when they differ
//! from what the generator makes.

// prost names a oneof's variants after its fields (`CreateRequest`, `CancelRequest`, ...).
#[allow(clippy::enum_variant_names)]
#[rustfmt::skip]
pub(crate) mod etcdserverpb;
#[rustfmt::skip]
pub(crate) mod mvccpb;
