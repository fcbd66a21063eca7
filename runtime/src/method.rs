//! [`MethodDescriptor`]: which method a call names on the wire.

use std::borrow::Cow;
use std::fmt;

/// Identifies a method on the wire: full service name, method name and (for protocols that
/// number methods: hulu_pbrpc, public_pbrpc, nova_pbrpc) its index in the service.
///
/// Generated clients hold theirs in a `const`; code that learns its methods at run time (a
/// load tester reading a `.proto`, a proxy) builds them from owned names:
///
/// ```
/// use brisk::MethodDescriptor;
/// const ECHO: MethodDescriptor = MethodDescriptor::new("example.EchoService", "Echo");
/// let named = MethodDescriptor::from_names(String::from("example.EchoService"), "Echo");
/// assert_eq!(named, ECHO);
/// assert_eq!(named.to_string(), "example.EchoService/Echo");
/// ```
///
/// Two descriptors are equal when they name the same method (service and method names); the
/// index and descriptors they carry are facts about that method, not part of its identity.
#[derive(Clone, Debug)]
pub struct MethodDescriptor {
    service: Cow<'static, str>,
    method: Cow<'static, str>,
    index: Option<u32>,
    file_descriptor_set: Option<&'static [u8]>,
}

impl MethodDescriptor {
    /// `service` is the full protobuf name (`example.EchoService`), `method` as in the `.proto`.
    pub const fn new(service: &'static str, method: &'static str) -> Self {
        MethodDescriptor {
            service: Cow::Borrowed(service),
            method: Cow::Borrowed(method),
            index: None,
            file_descriptor_set: None,
        }
    }

    /// A descriptor from names known only at run time.
    pub fn from_names(
        service: impl Into<Cow<'static, str>>,
        method: impl Into<Cow<'static, str>>,
    ) -> Self {
        MethodDescriptor {
            service: service.into(),
            method: method.into(),
            index: None,
            file_descriptor_set: None,
        }
    }

    /// Attaches the encoded `google.protobuf.FileDescriptorSet` describing the method's
    /// messages (generated clients do), so `http` channels can send them as JSON
    /// ([`ChannelBuilder::http_json`](crate::ChannelBuilder::http_json)).
    pub const fn with_file_descriptor_set(mut self, file_descriptor_set: &'static [u8]) -> Self {
        self.file_descriptor_set = Some(file_descriptor_set);
        self
    }

    /// Sets the method's position in its service (0 for the first method of the `.proto`):
    /// how hulu_pbrpc, public_pbrpc and nova_pbrpc name methods on the wire. Generated clients
    /// set it.
    ///
    /// ```
    /// use brisk::MethodDescriptor;
    /// const ECHO: MethodDescriptor = MethodDescriptor::new("example.EchoService", "Echo").with_index(0);
    /// assert_eq!(ECHO.index(), Some(0));
    /// ```
    pub const fn with_index(mut self, index: u32) -> Self {
        self.index = Some(index);
        self
    }

    /// The method's position in its service, when known
    /// ([`with_index`](MethodDescriptor::with_index)).
    pub fn index(&self) -> Option<u32> {
        self.index
    }

    /// The service's name without its package (`EchoService`), as hulu_pbrpc and public_pbrpc
    /// name services.
    pub fn service_short_name(&self) -> &str {
        self.service.rsplit('.').next().unwrap_or(&self.service)
    }

    /// The descriptors attached with
    /// [`with_file_descriptor_set`](MethodDescriptor::with_file_descriptor_set).
    pub fn file_descriptor_set(&self) -> Option<&'static [u8]> {
        self.file_descriptor_set
    }

    /// The full service name.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The method name.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The service's full name, without copying a `'static` one.
    pub(crate) fn service_cow(&self) -> Cow<'static, str> {
        self.service.clone()
    }

    /// The method's name, without copying a `'static` one.
    pub(crate) fn method_cow(&self) -> Cow<'static, str> {
        self.method.clone()
    }
}

impl PartialEq for MethodDescriptor {
    fn eq(&self, other: &Self) -> bool {
        self.service == other.service && self.method == other.method
    }
}

impl Eq for MethodDescriptor {}

impl std::hash::Hash for MethodDescriptor {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.service.hash(state);
        self.method.hash(state);
    }
}

impl fmt::Display for MethodDescriptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.service, self.method)
    }
}
