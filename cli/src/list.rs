//! `brisk list` and `brisk describe`, as grpcurl's: what a server hosts, from its reflection
//! service or a `.proto` file.
//!
//! ```text
//! $ brisk list 127.0.0.1:8000
//! example.EchoService
//! $ brisk list 127.0.0.1:8000 example.EchoService
//! example.EchoService.Echo
//! $ brisk describe 127.0.0.1:8000 example.EchoRequest
//! example.EchoRequest is a message:
//! message EchoRequest {
//!   required string message = 1;
//! }
//! ```

use crate::schema::{Schema, SchemaArgs};
use crate::Failure;

/// `brisk list`'s and `brisk describe`'s arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// The server: `host:port` (reflection is asked over gRPC, which every Brisk server
    /// speaks on its port).
    pub server: String,
    /// `list`: a service whose methods to list. `describe`: the service, method
    /// (`package.Service/Method`), message or enum to show. Left out: every service.
    pub symbol: Option<String>,
    #[command(flatten)]
    pub schema: SchemaArgs,
}

impl Options {
    async fn schema(&self) -> Result<Schema, Failure> {
        let symbols: Vec<&str> = self.symbol.as_deref().into_iter().collect();
        self.schema.source(&self.server).load(&symbols).await
    }
}

/// The lines `brisk list` prints: the services, sorted, or the full names of `symbol`'s
/// methods.
pub async fn list(options: &Options) -> Result<Vec<String>, Failure> {
    let schema = options.schema().await?;
    match &options.symbol {
        None => Ok(schema.services()),
        Some(name) => match schema.service(name) {
            Some(service) => Ok(service
                .methods()
                .map(|m| m.full_name().to_owned())
                .collect()),
            None => Err(Failure::usage(format!(
                "no service `{name}` in {}",
                schema.origin
            ))),
        },
    }
}

/// What `brisk describe` prints: each service (or `symbol`) as `.proto` source, under a line
/// saying what it is.
pub async fn describe(options: &Options) -> Result<String, Failure> {
    let schema = options.schema().await?;
    let names: Vec<String> = match &options.symbol {
        Some(symbol) => vec![full_name(&schema, symbol)],
        None => schema.services(),
    };
    let mut out = String::new();
    for name in names {
        let pool = &schema.pool;
        let kind = if pool.get_service_by_name(&name).is_some() {
            "a service"
        } else if pool.get_message_by_name(&name).is_some() {
            "a message"
        } else if pool.get_enum_by_name(&name).is_some() {
            "an enum"
        } else {
            "a method"
        };
        let Some(definition) = brisk::proto_source::definition(pool, &name) else {
            return Err(Failure::usage(format!(
                "no service, method, message or enum `{name}` in {}",
                schema.origin
            )));
        };
        out.push_str(&format!("{name} is {kind}:\n{definition}"));
    }
    Ok(out)
}

/// `symbol` by full name: a method as `package.Service.Method`, a service named without its
/// package when that is unique.
fn full_name(schema: &Schema, symbol: &str) -> String {
    let dotted = symbol.replacen('/', ".", 1);
    if let Some(service) = schema.service(&dotted) {
        return service.full_name().to_owned();
    }
    if let Ok(method) = schema.method(symbol) {
        return method.full_name().to_owned();
    }
    dotted
}
