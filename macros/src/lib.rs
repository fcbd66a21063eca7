//! `#[brisk::service]`: a Brisk service from a plain Rust trait, no `.proto` needed.
//!
//! Use it through the `brisk` crate, which re-exports it as `brisk::service`:
//!
//! ```ignore
//! #[brisk::service(package = "example", name = "EchoService")] // both optional
//! pub trait EchoService {
//!     /// Docs become docs on the generated items.
//!     #[rpc(name = "Echo")] // optional wire name; default: UpperCamelCase of the Rust name
//!     async fn echo(&self, request: EchoRequest) -> Result<EchoResponse, brisk::Status>;
//!     // An optional server context first; a plain return type is an infallible handler.
//!     async fn ping(&self, cntl: &mut brisk::ServerContext, request: Ping) -> Pong;
//! }
//! ```
//!
//! The trait is replaced by exactly what `brisk-codegen` generates for a `.proto` service with
//! the same model: the trait `EchoService` (implemented with plain `async fn`s), the server
//! adapter `EchoServiceServer<T>`, the async `EchoServiceClient` and the
//! `EchoServiceBlockingClient`, all with the trait's visibility. Clients always return
//! `Result<Response, brisk::Status>`.
//!
//! # Arguments
//!
//! - `package = "a.b"`: the protobuf package (default: none).
//! - `name = "EchoService"`: the service name on the wire (default: the trait's name).
//! - `codec = "prost"` (default) or `codec = "json"`. With `prost`, requests and responses are
//!   prost messages and the service is wire-compatible with a `.proto` service of the same
//!   package, name and method names (brpc's, or another language's). With `json`, they are
//!   serde types (`Serialize + DeserializeOwned`) sent as JSON text (`brisk::codec::Json`,
//!   feature `json` of `brisk`); JSON is the only serde codec.
//!
//! On a method, `#[rpc(name = "Echo")]` sets the method's wire name.
//!
//! # Methods
//!
//! `async fn name(&self, request: Req) -> Resp` or
//! `async fn name(&self, cntl: &mut brisk::ServerContext, request: Req) -> Resp`, where `Resp`
//! is either `Result<Response, brisk::Status>` or a plain `Response`.
//!
//! Streaming methods (served over `h2:grpc`) write the stream types of the `brisk` crate:
//!
//! ```ignore
//! // server streaming: one request, a stream of responses
//! async fn watch(&self, request: Req) -> Result<brisk::ResponseStream<Resp>, brisk::Status>;
//! // client streaming: a stream of requests, one response
//! async fn upload(&self, requests: brisk::Streaming<Req>) -> Result<Resp, brisk::Status>;
//! // bidi streaming
//! async fn chat(&self, requests: brisk::Streaming<Req>)
//!     -> Result<brisk::ResponseStream<Resp>, brisk::Status>;
//! ```
//!
//! The clients then take `impl brisk::codegen::Stream<Item = Req> + Send + 'static` where the
//! client streams and return `brisk::Streaming<Resp>` where the server streams; the blocking
//! client leaves streaming methods out. With `codec = "json"` the server's `schema()` is
//! `MessageSchema::Json`.
//!
//! Anything else (a method
//! that is not async, no `&self`, generics or lifetimes, patterns, several requests, `impl
//! Trait` arguments, default bodies, associated types or consts, clashing names) is a compile
//! error that says what to write instead.

use std::collections::HashMap;

use brisk_codegen::emit::{self, EmitOptions};
use brisk_codegen::model::{Method, Schema, Service, DEFAULT_CODEC_PATH, JSON_CODEC_PATH};
use proc_macro2::{Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::{
    FnArg, GenericArgument, ItemTrait, LitStr, Pat, PathArguments, ReturnType, TraitItem,
    TraitItemFn, Type,
};

/// Turns a trait into a Brisk service: see the [crate documentation](crate).
#[proc_macro_attribute]
pub fn service(
    attr: proc_macro::TokenStream,
    item: proc_macro::TokenStream,
) -> proc_macro::TokenStream {
    match expand(attr.into(), item.into()) {
        Ok(tokens) => tokens.into(),
        Err(error) => error.to_compile_error().into(),
    }
}

/// What `#[brisk::service(...)]` was given.
#[derive(Default)]
struct ServiceArgs {
    package: Option<LitStr>,
    name: Option<LitStr>,
    codec: Option<String>,
}

fn expand(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let mut errors = Errors::default();
    let args = match parse_service_args(attr) {
        Ok(args) => args,
        Err(error) => {
            errors.push(error);
            ServiceArgs::default()
        }
    };
    let item: ItemTrait = syn::parse2(item.clone()).map_err(|_| {
        syn::Error::new_spanned(
            &item,
            "#[brisk::service] goes on a trait: write \
             `pub trait Name { async fn method(&self, request: Req) -> Resp; }`",
        )
    })?;
    let service = build_service(&args, &item, &mut errors);
    errors.finish()?;
    emit::generate(&service, &EmitOptions::default())
        .map_err(|error| syn::Error::new(item.ident.span(), error.to_string()))
}

/// Collects every error so the user sees them all at once.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    fn at(&mut self, tokens: impl ToTokens, message: impl std::fmt::Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

fn parse_service_args(attr: TokenStream) -> syn::Result<ServiceArgs> {
    let mut args = ServiceArgs::default();
    let parser = syn::meta::parser(|meta| {
        let key = meta.path.to_token_stream().to_string();
        let slot = match key.as_str() {
            "package" => &mut args.package,
            "name" => &mut args.name,
            "codec" => {
                let value: LitStr = meta.value()?.parse()?;
                if args.codec.is_some() {
                    return Err(meta.error("`codec` is given twice; keep one"));
                }
                match value.value().as_str() {
                    "prost" | "json" => args.codec = Some(value.value()),
                    other => {
                        return Err(syn::Error::new(
                            value.span(),
                            format!(
                                "unknown codec \"{other}\"; write `codec = \"prost\"` (prost \
                                 messages, the default) or `codec = \"json\"` (serde types as \
                                 JSON)"
                            ),
                        ))
                    }
                }
                return Ok(());
            }
            _ => {
                return Err(meta.error(format!(
                    "unknown argument `{key}`; #[brisk::service] takes `package = \"a.b\"`, \
                     `name = \"ServiceName\"` and `codec = \"prost\"` or `codec = \"json\"`"
                )))
            }
        };
        let value: LitStr = meta
            .value()
            .and_then(|value| value.parse())
            .map_err(|_| meta.error(format!("write `{key} = \"...\"` with a string literal")))?;
        if slot.is_some() {
            return Err(meta.error(format!("`{key}` is given twice; keep one")));
        }
        *slot = Some(value);
        Ok(())
    });
    syn::parse::Parser::parse2(parser, attr)?;
    if let Some(package) = &args.package {
        let value = package.value();
        if !value.is_empty() && !value.split('.').all(is_identifier) {
            return Err(syn::Error::new(
                package.span(),
                format!(
                    "`{value}` is not a protobuf package; write dot-separated identifiers such \
                     as `package = \"example.echo\"`"
                ),
            ));
        }
    }
    if let Some(name) = &args.name {
        if !is_identifier(&name.value()) {
            return Err(syn::Error::new(
                name.span(),
                format!(
                    "`{}` is not a service name; write an identifier such as \
                     `name = \"EchoService\"`",
                    name.value()
                ),
            ));
        }
    }
    Ok(args)
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn build_service(args: &ServiceArgs, item: &ItemTrait, errors: &mut Errors) -> Service {
    let rust_name = item.ident.to_string();
    let proto_name = args
        .name
        .as_ref()
        .map_or_else(|| rust_name.clone(), LitStr::value);
    let package = args.package.as_ref().map(LitStr::value).unwrap_or_default();
    let mut service = Service::new(proto_name, package);
    service.rust_name = rust_name;
    service.visibility = item.vis.to_token_stream().to_string();
    service.codec_path = match args.codec.as_deref() {
        Some("json") => JSON_CODEC_PATH,
        _ => DEFAULT_CODEC_PATH,
    }
    .to_owned();
    // JSON messages describe themselves; prost ones have no descriptors here (the default).
    if args.codec.as_deref() == Some("json") {
        service.schema = Schema::Json;
    }

    if let Some(unsafety) = &item.unsafety {
        errors.at(
            unsafety,
            "a service trait cannot be `unsafe`; remove `unsafe`",
        );
    }
    if let Some(auto) = &item.auto_token {
        errors.at(auto, "a service trait cannot be `auto`; remove `auto`");
    }
    if !item.generics.params.is_empty() {
        errors.at(
            &item.generics,
            "a service trait cannot be generic; remove the parameters and use concrete request \
             and response types",
        );
    }
    if let Some(where_clause) = &item.generics.where_clause {
        errors.at(
            where_clause,
            "a service trait cannot have a `where` clause; remove it",
        );
    }
    if item.colon_token.is_some() {
        errors.at(
            &item.supertraits,
            "a service trait cannot declare supertraits (the generated trait is \
             `Send + Sync + 'static`); remove them",
        );
    }
    service.comments = docs(&item.attrs, errors, "a service trait");

    // Wire name -> Rust name of the method that uses it; generated Rust name -> method.
    let mut wire_names: HashMap<String, String> = HashMap::new();
    let mut rust_names: HashMap<String, String> = HashMap::new();
    for trait_item in &item.items {
        let TraitItem::Fn(function) = trait_item else {
            let what = match trait_item {
                TraitItem::Const(_) => "associated consts are",
                TraitItem::Type(_) => "associated types are",
                TraitItem::Macro(_) => "macro invocations are",
                _ => "this item is",
            };
            errors.at(
                trait_item,
                format!(
                    "{what} not supported in a #[brisk::service] trait; declare only methods \
                     like `async fn name(&self, request: Req) -> Resp;`"
                ),
            );
            continue;
        };
        let Some((method, wire_span)) = build_method(function, errors) else {
            continue;
        };
        let ident = &function.sig.ident;
        if let Some(other) = wire_names.get(&method.proto_name) {
            errors.push(syn::Error::new(
                wire_span,
                format!(
                    "methods `{other}` and `{ident}` both have the wire name `{}`; give one of \
                     them another with #[rpc(name = \"...\")]",
                    method.proto_name
                ),
            ));
        } else {
            wire_names.insert(method.proto_name.clone(), ident.to_string());
        }
        let name = ident.to_string();
        let name = name.strip_prefix("r#").unwrap_or(&name).to_owned();
        if ["new", "channel"].contains(&name.as_str()) {
            errors.at(
                ident,
                format!(
                    "a method named `{name}` clashes with the generated client's own `{name}`; \
                     rename it (and keep the wire name with #[rpc(name = \"{}\")])",
                    method.proto_name
                ),
            );
        }
        let with_name = format!("{name}_with");
        for generated in [&name, &with_name] {
            if let Some(other) = rust_names.get(generated) {
                let message = if other == &name {
                    format!("method `{name}` is declared twice; rename one of them")
                } else if generated == &name {
                    format!(
                        "method `{name}` clashes with the `{name}` the clients generate for \
                         `{other}` (its call with per-call options); rename `{name}` and keep \
                         the wire name with #[rpc(name = \"{}\")]",
                        method.proto_name
                    )
                } else {
                    format!(
                        "the clients generate `{generated}` for `{name}` (its call with per-call \
                         options), which clashes with method `{other}`; rename one of them and \
                         keep the wire name with #[rpc(name = \"...\")]"
                    )
                };
                errors.at(ident, message);
                break;
            }
        }
        rust_names.insert(name.clone(), name.clone());
        rust_names.insert(with_name, name);
        service.methods.push(method);
    }
    service
}

/// Fills a [`Method`] from a trait method, or reports why it cannot; also returns the span to
/// blame for a duplicate wire name.
fn build_method(function: &TraitItemFn, errors: &mut Errors) -> Option<(Method, Span)> {
    let sig = &function.sig;
    let ident = &sig.ident;
    let mut ok = true;
    let mut wire_name: Option<LitStr> = None;
    let mut doc_attrs = Vec::new();
    for attr in &function.attrs {
        if attr.path().is_ident("rpc") {
            let result = attr.parse_nested_meta(|meta| {
                if !meta.path.is_ident("name") {
                    return Err(meta.error(format!(
                        "unknown argument `{}`; #[rpc] takes only `name = \"WireName\"`",
                        meta.path.to_token_stream()
                    )));
                }
                let value: LitStr = meta.value()?.parse()?;
                if !is_identifier(&value.value()) {
                    return Err(syn::Error::new(
                        value.span(),
                        format!(
                            "`{}` is not a method name; write an identifier such as \
                             `#[rpc(name = \"Echo\")]`",
                            value.value()
                        ),
                    ));
                }
                if wire_name.is_some() {
                    return Err(meta.error("`name` is given twice; keep one"));
                }
                wire_name = Some(value);
                Ok(())
            });
            if let Err(error) = result {
                errors.push(error);
                ok = false;
            } else if wire_name.is_none() {
                errors.at(attr, "write `#[rpc(name = \"WireName\")]`");
                ok = false;
            }
        } else {
            doc_attrs.push(attr.clone());
        }
    }
    let comments = docs(&doc_attrs, errors, "a service method");
    let mut fail = |tokens: &dyn ToTokens, message: String| {
        errors.at(tokens, message);
        ok = false;
    };

    let signature = format!("`async fn {ident}(&self, request: Req) -> Resp;`");
    if sig.asyncness.is_none() {
        fail(
            &sig.fn_token,
            format!("service methods must be async: write {signature}"),
        );
    }
    if let Some(constness) = &sig.constness {
        fail(
            constness,
            "service methods cannot be `const`; remove it".into(),
        );
    }
    if let Some(unsafety) = &sig.unsafety {
        fail(
            unsafety,
            "service methods cannot be `unsafe`; remove it".into(),
        );
    }
    if let Some(abi) = &sig.abi {
        fail(
            abi,
            "service methods cannot declare an ABI; remove it".into(),
        );
    }
    if let Some(variadic) = &sig.variadic {
        fail(
            variadic,
            format!("service methods cannot be variadic: write {signature}"),
        );
    }
    for param in &sig.generics.params {
        let message = match param {
            syn::GenericParam::Lifetime(_) => format!(
                "service methods cannot have lifetime parameters: requests and responses are \
                 owned values; remove `<...>` and write {signature} with owned types"
            ),
            _ => format!(
                "service methods cannot be generic: remove `<...>` and write {signature} with \
                 concrete types"
            ),
        };
        fail(param, message);
    }
    if let Some(where_clause) = &sig.generics.where_clause {
        fail(
            where_clause,
            format!("service methods cannot have a `where` clause: write {signature}"),
        );
    }
    if let Some(body) = &function.default {
        fail(
            body,
            "service methods cannot have a default body: end the declaration with `;` and write \
             the body in the `impl`"
                .into(),
        );
    }

    // The receiver: exactly `&self`.
    match sig.inputs.first() {
        Some(FnArg::Receiver(receiver)) => {
            if receiver.colon_token.is_some() {
                fail(
                    receiver,
                    format!("write `&self` as the receiver: {signature}"),
                );
            } else if receiver.reference.is_none() {
                fail(
                    receiver,
                    "write `&self` instead of `self`: one service value serves every call".into(),
                );
            } else if receiver.mutability.is_some() {
                fail(
                    receiver,
                    "write `&self` instead of `&mut self`: calls run concurrently, so keep \
                     mutable state behind a `Mutex` or atomics"
                        .into(),
                );
            } else if let Some((_, Some(lifetime))) = &receiver.reference {
                fail(
                    lifetime,
                    format!("write `&self` without a lifetime: {signature}"),
                );
            }
        }
        Some(other) => fail(
            other,
            format!("service methods take `&self` first: write {signature}"),
        ),
        None => fail(
            &sig.ident,
            format!("service methods take `&self` and a request: write {signature}"),
        ),
    }

    // Then an optional `&mut ServerContext` and one request.
    let args: Vec<&syn::PatType> = sig
        .inputs
        .iter()
        .filter_map(|arg| match arg {
            FnArg::Typed(arg) => Some(arg),
            FnArg::Receiver(_) => None,
        })
        .collect();
    for arg in &args {
        check_pattern(&arg.pat, &mut fail);
        if let Some(token) = find_impl(arg.ty.to_token_stream()) {
            fail(
                &token,
                "`impl Trait` arguments are not supported: name a concrete request type".into(),
            );
        }
    }
    let with_context = format!(
        "`async fn {ident}(&self, cntl: &mut brisk::ServerContext, request: Req) -> Resp;`"
    );
    let (takes_context, request) = match args.as_slice() {
        [] => {
            if !sig.inputs.is_empty() {
                fail(
                    &sig.ident,
                    format!("the method takes no request: write {signature}"),
                );
            }
            (false, None)
        }
        [request] => {
            if is_context(&request.ty).is_some() {
                fail(
                    request,
                    format!(
                        "the method takes the server context but no request: write \
                         {with_context}"
                    ),
                );
                (true, None)
            } else {
                (false, Some(*request))
            }
        }
        [cntl, request] => {
            match is_context(&cntl.ty) {
                Some(true) => {}
                Some(false) => fail(
                    &cntl.ty,
                    format!("the server context is borrowed mutably: write {with_context}"),
                ),
                None => fail(
                    request,
                    format!(
                        "service methods take one request: write {signature} (or \
                         {with_context}) and put several values in one request type"
                    ),
                ),
            }
            (true, Some(*request))
        }
        [_, _, extra, ..] => {
            fail(
                extra,
                format!(
                    "service methods take one request: write {signature} (or {with_context}) \
                     and put several values in one request type"
                ),
            );
            (true, None)
        }
    };
    let mut client_streaming = false;
    let input_type = request.map(|request| {
        if let Type::Reference(reference) = &*request.ty {
            let message = if stream_of(&reference.elem, STREAMING).is_some() {
                "a stream of requests is received by value: write \
                 `requests: brisk::Streaming<Req>`"
                    .to_owned()
            } else {
                format!("requests are received by value: write {signature} with an owned type")
            };
            fail(reference, message);
            return request.ty.to_token_stream().to_string();
        }
        let ty = match stream_of(&request.ty, STREAMING) {
            Some(Ok(inner)) => {
                client_streaming = true;
                inner
            }
            Some(Err(())) => {
                fail(
                    &request.ty,
                    "a stream of requests is `brisk::Streaming<Req>`, with one request type".into(),
                );
                return request.ty.to_token_stream().to_string();
            }
            None => &*request.ty,
        };
        if let Some(token) = find_ident(ty.to_token_stream(), RESPONSE_STREAM) {
            fail(
                &token,
                "`ResponseStream` is what a server-streaming handler returns; a stream of \
                 requests is received as `requests: brisk::Streaming<Req>`"
                    .into(),
            );
        } else if let Some(token) = find_ident(ty.to_token_stream(), STREAMING) {
            fail(&token, misplaced_streaming());
        }
        ty.to_token_stream().to_string()
    });

    // The response: `Result<Resp, brisk::Status>` or `Resp`, where `Resp` may be
    // `brisk::ResponseStream<Resp>`.
    let (output, returns_result) = match &sig.output {
        ReturnType::Default => (None, false),
        ReturnType::Type(_, ty) => {
            if let Some(token) = find_impl(ty.to_token_stream()) {
                fail(
                    &token,
                    "return the response type itself (the generated trait wraps it in a \
                     future): write `-> Resp` or `-> Result<Resp, brisk::Status>`"
                        .into(),
                );
            }
            if let Type::Reference(reference) = &**ty {
                fail(
                    reference,
                    "responses are returned by value: write an owned response type".into(),
                );
            }
            match result_type(ty) {
                ResultType::NotResult => (Some(&**ty), false),
                ResultType::Status(output) => (Some(output), true),
                ResultType::OtherError => {
                    fail(
                        ty,
                        "the error type of a service method is `brisk::Status`: write \
                         `-> Result<Resp, brisk::Status>`, or `-> Resp` for a method that \
                         cannot fail"
                            .into(),
                    );
                    (None, true)
                }
            }
        }
    };
    let mut server_streaming = false;
    let output_type = match output {
        None => "()".to_owned(),
        Some(output) => match stream_of(output, RESPONSE_STREAM) {
            Some(Err(())) => {
                fail(
                    output,
                    "a stream of responses is `brisk::ResponseStream<Resp>`, with one response \
                     type"
                        .into(),
                );
                output.to_token_stream().to_string()
            }
            found => {
                let ty = match found {
                    Some(Ok(inner)) => {
                        server_streaming = true;
                        inner
                    }
                    _ => output,
                };
                if let Some(token) = find_ident(ty.to_token_stream(), STREAMING) {
                    fail(
                        &token,
                        "`Streaming` is what a handler receives; a stream of responses is \
                         returned as `-> Result<brisk::ResponseStream<Resp>, brisk::Status>`"
                            .into(),
                    );
                } else if let Some(token) = find_ident(ty.to_token_stream(), RESPONSE_STREAM) {
                    fail(&token, misplaced_response_stream());
                }
                ty.to_token_stream().to_string()
            }
        },
    };

    let rust_name = ident.to_string();
    let proto_name = wire_name
        .as_ref()
        .map_or_else(|| upper_camel_case(&rust_name), LitStr::value);
    let wire_span = wire_name
        .as_ref()
        .map_or_else(|| ident.span(), LitStr::span);
    if !ok {
        return None;
    }
    let mut method = Method::new(proto_name, rust_name, input_type?, output_type);
    method.comments = comments;
    method.takes_context = takes_context;
    method.returns_result = returns_result;
    method.client_streaming = client_streaming;
    method.server_streaming = server_streaming;
    Some((method, wire_span))
}

/// The runtime's stream of received messages, `brisk::Streaming<T>`.
const STREAMING: &str = "Streaming";
/// The runtime's stream of sent messages, `brisk::ResponseStream<T>`.
const RESPONSE_STREAM: &str = "ResponseStream";

fn misplaced_streaming() -> String {
    "`Streaming` can only be the whole request type: write \
     `requests: brisk::Streaming<Req>` for a stream of requests"
        .into()
}

fn misplaced_response_stream() -> String {
    "`ResponseStream` can only be the whole response type: write \
     `-> Result<brisk::ResponseStream<Resp>, brisk::Status>` for a stream of responses"
        .into()
}

/// Recognises `…::Name<T>` (by its last segment, like `Status` and `ServerContext`):
/// `Some(Ok(T))`, `Some(Err(()))` when the arguments are not exactly one type, `None` when `ty`
/// is something else.
fn stream_of<'a>(ty: &'a Type, name: &str) -> Option<Result<&'a Type, ()>> {
    let Type::Path(path) = ty else {
        return None;
    };
    let last = path.path.segments.last()?;
    if last.ident != name {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return Some(Err(()));
    };
    match args.args.iter().collect::<Vec<_>>().as_slice() {
        [GenericArgument::Type(inner)] => Some(Ok(inner)),
        _ => Some(Err(())),
    }
}

/// The first identifier `name` in `tokens`, if any.
fn find_ident(tokens: TokenStream, name: &str) -> Option<TokenTree> {
    tokens.into_iter().find_map(|tree| match &tree {
        TokenTree::Ident(ident) if ident == name => Some(tree),
        TokenTree::Group(group) => find_ident(group.stream(), name),
        _ => None,
    })
}

/// Requests are bound to a plain name (`request: T` or `_: T`).
fn check_pattern(pat: &Pat, fail: &mut dyn FnMut(&dyn ToTokens, String)) {
    match pat {
        Pat::Wild(_) => {}
        Pat::Ident(binding) => {
            let name = &binding.ident;
            if let Some(token) = &binding.mutability {
                fail(
                    token,
                    format!(
                        "remove `mut`: write `{name}: T` here and `let mut {name} = {name};` in \
                         the `impl`"
                    ),
                );
            } else if binding.by_ref.is_some() || binding.subpat.is_some() {
                fail(binding, format!("write a plain name such as `{name}: T`"));
            }
        }
        other => fail(
            other,
            "patterns are not supported here: write a plain name such as `request: T` and \
             destructure it in the `impl`"
                .into(),
        ),
    }
}

/// Whether `ty` is the server context: `Some(true)` for `&mut …ServerContext`, `Some(false)`
/// for another kind of `…ServerContext`, `None` when it is not the context at all.
fn is_context(ty: &Type) -> Option<bool> {
    let (inner, mutable) = match ty {
        Type::Reference(reference) => (&*reference.elem, reference.mutability.is_some()),
        other => (other, false),
    };
    let Type::Path(path) = inner else {
        return None;
    };
    let last = path.path.segments.last()?;
    (last.ident == "ServerContext").then_some(mutable && matches!(ty, Type::Reference(_)))
}

enum ResultType<'a> {
    NotResult,
    Status(&'a Type),
    OtherError,
}

/// Recognises `Result<T, …Status>`.
fn result_type(ty: &Type) -> ResultType<'_> {
    let Type::Path(path) = ty else {
        return ResultType::NotResult;
    };
    let Some(last) = path.path.segments.last() else {
        return ResultType::NotResult;
    };
    if last.ident != "Result" {
        return ResultType::NotResult;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return ResultType::OtherError;
    };
    let types: Vec<&Type> = args
        .args
        .iter()
        .filter_map(|arg| match arg {
            GenericArgument::Type(ty) => Some(ty),
            _ => None,
        })
        .collect();
    match types.as_slice() {
        [ok, Type::Path(error)]
            if error
                .path
                .segments
                .last()
                .is_some_and(|segment| segment.ident == "Status") =>
        {
            ResultType::Status(ok)
        }
        _ => ResultType::OtherError,
    }
}

/// The first `impl` keyword in `tokens`, if any.
fn find_impl(tokens: TokenStream) -> Option<TokenTree> {
    tokens.into_iter().find_map(|tree| match &tree {
        TokenTree::Ident(ident) if ident == "impl" => Some(tree),
        TokenTree::Group(group) => find_impl(group.stream()),
        _ => None,
    })
}

/// Doc comments as lines; any other attribute is an error.
fn docs(attrs: &[syn::Attribute], errors: &mut Errors, what: &str) -> Vec<String> {
    let mut lines = Vec::new();
    for attr in attrs {
        if attr.path().is_ident("doc") {
            if let syn::Meta::NameValue(syn::MetaNameValue {
                value:
                    syn::Expr::Lit(syn::ExprLit {
                        lit: syn::Lit::Str(text),
                        ..
                    }),
                ..
            }) = &attr.meta
            {
                lines.extend(text.value().lines().map(str::to_owned));
                continue;
            }
        }
        errors.push(syn::Error::new_spanned(
            attr,
            format!(
                "only doc comments{} are supported on {what} under #[brisk::service]; remove \
                 this attribute",
                if what == "a service method" {
                    " and #[rpc(name = \"...\")]"
                } else {
                    ""
                }
            ),
        ));
    }
    lines
}

/// `get_user` -> `GetUser`, `r#type` -> `Type`.
fn upper_camel_case(name: &str) -> String {
    let name = name.strip_prefix("r#").unwrap_or(name);
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camel_case() {
        assert_eq!(upper_camel_case("echo"), "Echo");
        assert_eq!(upper_camel_case("get_user_info"), "GetUserInfo");
        assert_eq!(upper_camel_case("r#type"), "Type");
        assert_eq!(upper_camel_case("a__b"), "AB");
    }

    #[test]
    fn expands_to_the_emitters_output() {
        let item: TokenStream = syn::parse_quote! {
            /// Echoes.
            pub(crate) trait Echo {
                #[rpc(name = "Say")]
                async fn say(&self, request: Req) -> Result<Resp, brisk::Status>;
                async fn ping(&self, cntl: &mut brisk::ServerContext, request: u8) -> u8;
            }
        };
        let out = expand(quote::quote!(package = "p", codec = "json"), item).unwrap();
        let mut service = Service::new("Echo", "p");
        service.visibility = "pub (crate)".into();
        service.codec_path = JSON_CODEC_PATH.into();
        service.schema = Schema::Json;
        service.comments = vec![" Echoes.".into()];
        service
            .methods
            .push(Method::new("Say", "say", "Req", "Resp"));
        let mut ping = Method::new("Ping", "ping", "u8", "u8");
        ping.takes_context = true;
        ping.returns_result = false;
        service.methods.push(ping);
        service.methods[0].takes_context = false;
        let expected = emit::generate(&service, &EmitOptions::default()).unwrap();
        assert_eq!(out.to_string(), expected.to_string());
    }

    #[test]
    fn stream_types_set_the_method_kind() {
        let item: TokenStream = syn::parse_quote! {
            pub trait Streams {
                async fn watch(&self, request: A) -> Result<brisk::ResponseStream<B>, brisk::Status>;
                async fn upload(&self, requests: brisk::Streaming<A>) -> B;
                async fn chat(
                    &self,
                    cntl: &mut brisk::ServerContext,
                    requests: Streaming<A>,
                ) -> ResponseStream<B>;
            }
        };
        let mut errors = Errors::default();
        let service = build_service(
            &ServiceArgs::default(),
            &syn::parse2(item).unwrap(),
            &mut errors,
        );
        errors.finish().unwrap();
        let kinds: Vec<_> = service
            .methods
            .iter()
            .map(|m| (m.input_type.as_str(), m.output_type.as_str(), m.kind()))
            .collect();
        use brisk_codegen::model::MethodKind::*;
        assert_eq!(
            kinds,
            [
                ("A", "B", ServerStreaming),
                ("A", "B", ClientStreaming),
                ("A", "B", BidiStreaming)
            ]
        );
        assert_eq!(service.schema, Schema::Opaque);
    }

    #[test]
    fn misplaced_stream_types_are_errors() {
        for item in [
            quote::quote! { trait T { async fn f(&self, r: brisk::ResponseStream<A>) -> B; } },
            quote::quote! { trait T { async fn f(&self, r: A) -> Result<Streaming<B>, Status>; } },
            quote::quote! { trait T { async fn f(&self, r: Vec<Streaming<A>>) -> B; } },
            quote::quote! { trait T { async fn f(&self, r: A) -> Option<ResponseStream<B>>; } },
            quote::quote! { trait T { async fn f(&self, r: Streaming) -> B; } },
            quote::quote! { trait T { async fn f(&self, r: Streaming<A, C>) -> B; } },
        ] {
            let message = expand(TokenStream::new(), item.clone())
                .unwrap_err()
                .to_string();
            assert!(message.contains("Stream"), "{item}: {message}");
        }
    }
}
