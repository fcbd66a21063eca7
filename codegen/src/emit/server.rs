//! The server side: the service trait `X` and the adapter `XServer<T>` that implements
//! `::brisk::codegen::Service` for any `T: X`.

use proc_macro2::{Ident, Literal, Span, TokenStream};
use quote::quote;

use super::{docs, Checked, CheckedMethod, SchemaTokens};
use crate::error::Error;
use crate::model::Service;

/// Emits the service trait and the server adapter for `service`.
pub fn generate(service: &Service) -> Result<TokenStream, Error> {
    Ok(emit(&Checked::new(service)?))
}

pub(crate) fn emit(model: &Checked<'_>) -> TokenStream {
    let mut tokens = emit_trait(model);
    tokens.extend(emit_server(model));
    tokens
}

fn emit_trait(model: &Checked<'_>) -> TokenStream {
    let trait_ident = &model.trait_ident;
    let vis = &model.vis;
    let trait_docs = docs(
        &model.service.comments,
        &format!(
            "Server-side trait for `{}`. Implement it with plain `async fn`s.",
            model.full_name
        ),
    );
    let methods = model.methods.iter().map(|method| {
        let ident = &method.ident;
        let method_docs = docs(
            &method.method.comments,
            &format!("Handles `{}`.", method.full_name),
        );
        let cntl = method
            .method
            .takes_context
            .then(|| quote! { cntl: &mut ::brisk::ServerContext, });
        let request = request_param(method);
        let response = response_type(method);
        let result = if method.method.returns_result {
            quote! { ::core::result::Result<#response, ::brisk::Status> }
        } else {
            quote! { #response }
        };
        quote! {
            #method_docs
            fn #ident(
                &self,
                #cntl
                #request
            ) -> impl ::core::future::Future<
                Output = #result,
            > + ::core::marker::Send;
        }
    });
    quote! {
        #trait_docs
        #vis trait #trait_ident: ::core::marker::Send + ::core::marker::Sync + 'static {
            #(#methods)*
        }
    }
}

/// The trait method's request parameter: `request: Req`, or `requests: ::brisk::Streaming<Req>`
/// when the client streams.
fn request_param(method: &CheckedMethod<'_>) -> TokenStream {
    let input = &method.input;
    if method.method.client_streaming {
        quote! { requests: ::brisk::Streaming<#input>, }
    } else {
        quote! { request: #input, }
    }
}

/// What the handler produces on success: `Resp`, or `::brisk::ResponseStream<Resp>` when the
/// server streams.
fn response_type(method: &CheckedMethod<'_>) -> TokenStream {
    let output = &method.output;
    if method.method.server_streaming {
        quote! { ::brisk::ResponseStream<#output> }
    } else {
        quote! { #output }
    }
}

/// `inner.name(&mut cntl, ARG).await` as a `Result<…, Status>`, whether or not the handler is
/// fallible, with `then` applied to the success value.
fn handler_call(method: &CheckedMethod<'_>, arg: TokenStream, then: TokenStream) -> TokenStream {
    let ident = &method.ident;
    let args = if method.method.takes_context {
        quote! { &mut cntl, #arg }
    } else {
        quote! { #arg }
    };
    if method.method.returns_result {
        quote! {
            match inner.#ident(#args).await {
                ::core::result::Result::Ok(response) => #then,
                ::core::result::Result::Err(status) => ::core::result::Result::Err(status),
            }
        }
    } else {
        quote! {{
            let response = inner.#ident(#args).await;
            #then
        }}
    }
}

fn emit_server(model: &Checked<'_>) -> TokenStream {
    let trait_ident = &model.trait_ident;
    let server_ident = &model.server_ident;
    let vis = &model.vis;
    let server_name = server_ident.to_string();
    let full_name = &model.full_name;
    let struct_docs = format!(" Serves an [`{trait_ident}`] implementation on a `brisk::Server`.");
    let method_names = model
        .methods
        .iter()
        .map(|method| method.method.proto_name.as_str());
    let call = emit_call(model);
    let streaming = emit_streaming(model);
    let schema = emit_schema(model);

    quote! {
        #[doc = #struct_docs]
        #vis struct #server_ident<T> {
            inner: ::std::sync::Arc<T>,
        }

        impl<T: #trait_ident> #server_ident<T> {
            /// Full protobuf name of the service.
            pub const SERVICE_NAME: &'static str = #full_name;

            /// Wraps a service implementation.
            pub fn new(service: T) -> Self {
                Self::from_arc(::std::sync::Arc::new(service))
            }

            /// Wraps a service implementation that is already shared.
            pub fn from_arc(service: ::std::sync::Arc<T>) -> Self {
                Self { inner: service }
            }
        }

        impl<T> ::core::clone::Clone for #server_ident<T> {
            fn clone(&self) -> Self {
                Self {
                    inner: ::std::sync::Arc::clone(&self.inner),
                }
            }
        }

        impl<T> ::core::fmt::Debug for #server_ident<T> {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.debug_struct(#server_name)
                    .field("service", &#full_name)
                    .finish()
            }
        }

        impl<T: #trait_ident> ::brisk::codegen::Service for #server_ident<T> {
            fn full_name(&self) -> &'static str {
                #full_name
            }

            fn method_names(&self) -> &'static [&'static str] {
                &[#(#method_names),*]
            }

            #call
            #streaming
            #schema
        }
    }
}

/// `Service::call`: one arm per unary method; a streaming method's index is answered with
/// EREQUEST, since only a streaming protocol can carry it.
fn emit_call(model: &Checked<'_>) -> TokenStream {
    let codec = &model.codec;
    let unary = || model.methods.iter().filter(|m| !m.method.is_streaming());
    if model.methods.is_empty() {
        return quote! {
            fn call(
                &self,
                method: usize,
                cntl: ::brisk::ServerContext,
                request: ::brisk::codegen::Bytes,
            ) -> ::brisk::codegen::ServiceFuture {
                let _ = request;
                ::brisk::codegen::unknown_method(cntl, method)
            }
        };
    }
    let arms = model.methods.iter().enumerate().map(|(index, method)| {
        let index = Literal::usize_unsuffixed(index);
        if method.method.is_streaming() {
            let message = format!(
                "streaming method `{}` needs protocol h2:grpc",
                method.full_name
            );
            return quote! {
                #index => ::std::boxed::Box::pin(async move {
                    ::brisk::codegen::ServiceResponse::new(
                        cntl,
                        ::core::result::Result::Err(::brisk::Status::new(
                            ::brisk::errno::EREQUEST,
                            #message,
                        )),
                    )
                }),
            };
        }
        let input = &method.input;
        let output = &method.output;
        let handled = handler_call(
            method,
            quote! { request },
            quote! { ::brisk::codegen::encode_response::<#codec, #output>(&response) },
        );
        let schema = request_schema(model, method);
        quote! {
            #index => {
                #schema
                ::std::boxed::Box::pin(async move {
                    let decoded = ::brisk::codegen::decode_request_of::<#codec, #input>(
                        &REQUEST,
                        request,
                    );
                    let result = match decoded {
                        ::core::result::Result::Ok(request) => #handled,
                        ::core::result::Result::Err(status) => ::core::result::Result::Err(status),
                    };
                    ::brisk::codegen::ServiceResponse::new(cntl, result)
                })
            }
        }
    });
    // `mut` only when some handler borrows the context, so that no `unused_mut` fires.
    let cntl = if unary().any(|m| m.method.takes_context) {
        quote! { mut cntl }
    } else {
        quote! { cntl }
    };
    let unused_request = (unary().count() == 0).then(|| quote! { let _ = request; });
    let inner =
        (unary().count() > 0).then(|| quote! { let inner = ::std::sync::Arc::clone(&self.inner); });
    quote! {
        fn call(
            &self,
            method: usize,
            #cntl: ::brisk::ServerContext,
            request: ::brisk::codegen::Bytes,
        ) -> ::brisk::codegen::ServiceFuture {
            #unused_request
            #inner
            match method {
                #(#arms)*
                _ => ::brisk::codegen::unknown_method(cntl, method),
            }
        }
    }
}

/// The `static REQUEST` a method decodes its request with: the message's protobuf name (the
/// Rust type's name when the model has none) and the service's descriptors, if any.
fn request_schema(model: &Checked<'_>, method: &CheckedMethod<'_>) -> TokenStream {
    let message = if method.method.input_message.is_empty() {
        let input = &method.method.input_type;
        let path = input.split('<').next().unwrap_or(input);
        path.rsplit("::").next().unwrap_or(path).trim().to_owned()
    } else {
        method.method.input_message.clone()
    };
    let descriptors = match &model.schema {
        Some(SchemaTokens::Protobuf(path)) => quote! { ::core::option::Option::Some(#path) },
        _ => quote! { ::core::option::Option::None },
    };
    quote! {
        static REQUEST: ::brisk::codegen::RequestSchema =
            ::brisk::codegen::RequestSchema::new(#message, #descriptors);
    }
}

/// `Service::method_kinds` and `Service::call_streaming`, when the service has a streaming
/// method (otherwise the runtime's defaults: all unary, no streaming calls).
fn emit_streaming(model: &Checked<'_>) -> TokenStream {
    let codec = &model.codec;
    let streaming = || model.methods.iter().filter(|m| m.method.is_streaming());
    if streaming().next().is_none() {
        return TokenStream::new();
    }
    let kinds = model.methods.iter().map(|method| {
        let variant = Ident::new(method.method.kind().variant_name(), Span::call_site());
        quote! { ::brisk::codegen::MethodKind::#variant }
    });
    let arms = model.methods.iter().enumerate().filter_map(|(index, method)| {
        if !method.method.is_streaming() {
            return None;
        }
        let index = Literal::usize_unsuffixed(index);
        let input = &method.input;
        let output = &method.output;
        let encoded = if method.method.server_streaming {
            quote! {
                ::core::result::Result::Ok(
                    ::brisk::codegen::encode_stream::<#codec, #output>(response),
                )
            }
        } else {
            // The one response of a client-streaming handler goes out as a one-item stream.
            quote! {
                ::core::result::Result::Ok(::brisk::codegen::encode_stream::<#codec, #output>(
                    ::std::boxed::Box::pin(::brisk::codegen::once(::core::future::ready(
                        ::core::result::Result::Ok(response),
                    ))),
                ))
            }
        };
        let result = if method.method.client_streaming {
            let handled = handler_call(method, quote! { requests }, encoded);
            quote! {
                let requests = ::brisk::codegen::Streaming::<#input>::requests::<#codec>(requests);
                let result = #handled;
            }
        } else {
            let handled = handler_call(method, quote! { request }, encoded);
            let schema = request_schema(model, method);
            quote! {
                #schema
                let result =
                    match ::brisk::codegen::single_request::<#codec, #input>(&REQUEST, requests)
                        .await
                    {
                        ::core::result::Result::Ok(request) => #handled,
                        ::core::result::Result::Err(status) => {
                            ::core::result::Result::Err(status)
                        }
                    };
            }
        };
        Some(quote! {
            #index => ::std::boxed::Box::pin(async move {
                #result
                ::brisk::codegen::StreamingResponse { context: cntl, result }
            }),
        })
    });
    let cntl = if streaming().any(|m| m.method.takes_context) {
        quote! { mut cntl }
    } else {
        quote! { cntl }
    };
    quote! {
        fn method_kinds(&self) -> &'static [::brisk::codegen::MethodKind] {
            &[#(#kinds),*]
        }

        fn call_streaming(
            &self,
            method: usize,
            #cntl: ::brisk::ServerContext,
            requests: ::brisk::codegen::BytesStream,
        ) -> ::brisk::codegen::StreamingFuture {
            let inner = ::std::sync::Arc::clone(&self.inner);
            match method {
                #(#arms)*
                _ => {
                    ::core::mem::drop(requests);
                    ::std::boxed::Box::pin(async move {
                    ::brisk::codegen::StreamingResponse {
                        context: cntl,
                        result: ::core::result::Result::Err(::brisk::Status::new(
                            ::brisk::errno::ENOMETHOD,
                            ::std::format!("no streaming method with index {method}"),
                        )),
                    }
                    })
                }
            }
        }
    }
}

/// `Service::schema`, unless the model keeps the runtime's default.
fn emit_schema(model: &Checked<'_>) -> TokenStream {
    let schema = match &model.schema {
        None => return TokenStream::new(),
        Some(SchemaTokens::Json) => quote! { ::brisk::codegen::MessageSchema::Json },
        Some(SchemaTokens::Protobuf(constant)) => quote! {
            ::brisk::codegen::MessageSchema::Protobuf {
                file_descriptor_set: #constant,
            }
        },
    };
    quote! {
        fn schema(&self) -> ::brisk::codegen::MessageSchema {
            #schema
        }
    }
}
