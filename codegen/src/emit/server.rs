//! The server side: the service trait `X` and the adapter `XServer<T>` that implements
//! `::brisk::codegen::Service` for any `T: X`.

use proc_macro2::{Literal, TokenStream};
use quote::quote;

use super::{docs, Checked};
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
        let input = &method.input;
        let output = &method.output;
        let method_docs = docs(
            &method.method.comments,
            &format!("Handles `{}`.", method.full_name),
        );
        let cntl = method
            .method
            .takes_context
            .then(|| quote! { cntl: &mut ::brisk::ServerContext, });
        let result = if method.method.returns_result {
            quote! { ::core::result::Result<#output, ::brisk::Status> }
        } else {
            quote! { #output }
        };
        quote! {
            #method_docs
            fn #ident(
                &self,
                #cntl
                request: #input,
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

fn emit_server(model: &Checked<'_>) -> TokenStream {
    let trait_ident = &model.trait_ident;
    let server_ident = &model.server_ident;
    let vis = &model.vis;
    let server_name = server_ident.to_string();
    let full_name = &model.full_name;
    let codec = &model.codec;
    let struct_docs = format!(" Serves an [`{trait_ident}`] implementation on a `brisk::Server`.");
    let method_names = model
        .methods
        .iter()
        .map(|method| method.method.proto_name.as_str());

    let call = if model.methods.is_empty() {
        quote! {
            fn call(
                &self,
                method: usize,
                cntl: ::brisk::ServerContext,
                request: ::brisk::codegen::Bytes,
            ) -> ::brisk::codegen::ServiceFuture {
                let _ = request;
                ::brisk::codegen::unknown_method(cntl, method)
            }
        }
    } else {
        let arms = model.methods.iter().enumerate().map(|(index, method)| {
            let index = Literal::usize_unsuffixed(index);
            let ident = &method.ident;
            let input = &method.input;
            let output = &method.output;
            let args = if method.method.takes_context {
                quote! { &mut cntl, request }
            } else {
                quote! { request }
            };
            let handled = if method.method.returns_result {
                quote! {
                    match inner.#ident(#args).await {
                        ::core::result::Result::Ok(response) => {
                            ::brisk::codegen::encode_response::<#codec, #output>(&response)
                        }
                        ::core::result::Result::Err(status) => {
                            ::core::result::Result::Err(status)
                        }
                    }
                }
            } else {
                quote! {
                    let response = inner.#ident(#args).await;
                    ::brisk::codegen::encode_response::<#codec, #output>(&response)
                }
            };
            quote! {
                #index => ::std::boxed::Box::pin(async move {
                    let result = match ::brisk::codegen::decode_request::<#codec, #input>(request) {
                        ::core::result::Result::Ok(request) => {
                            #handled
                        }
                        ::core::result::Result::Err(status) => ::core::result::Result::Err(status),
                    };
                    ::brisk::codegen::ServiceResponse::new(cntl, result)
                }),
            }
        });
        // `mut` only when some handler borrows the context, so that no `unused_mut` fires.
        let cntl = if model.methods.iter().any(|m| m.method.takes_context) {
            quote! { mut cntl }
        } else {
            quote! { cntl }
        };
        quote! {
            fn call(
                &self,
                method: usize,
                #cntl: ::brisk::ServerContext,
                request: ::brisk::codegen::Bytes,
            ) -> ::brisk::codegen::ServiceFuture {
                let inner = ::std::sync::Arc::clone(&self.inner);
                match method {
                    #(#arms)*
                    _ => ::brisk::codegen::unknown_method(cntl, method),
                }
            }
        }
    };

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
        }
    }
}
