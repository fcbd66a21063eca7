//! The async client `XClient`: a cheap-to-clone stub over a `::brisk::Channel` whose methods
//! take `&self`.

use proc_macro2::TokenStream;
use quote::quote;

use super::{docs, Checked, CheckedMethod, SchemaTokens};
use crate::error::Error;
use crate::model::Service;

/// Emits the async client for `service`.
pub fn generate(service: &Service) -> Result<TokenStream, Error> {
    Ok(emit(&Checked::new(service)?))
}

pub(crate) fn emit(model: &Checked<'_>) -> TokenStream {
    let client_ident = &model.client_ident;
    let full_name = &model.full_name;
    let vis = &model.vis;
    let struct_docs = docs(
        &model.service.comments,
        &format!("Async client for `{full_name}`. Cheap to clone; all methods take `&self`."),
    );
    let methods = model
        .methods
        .iter()
        .map(|method| emit_method(model, method));
    quote! {
        #struct_docs
        #[derive(Debug, Clone)]
        #vis struct #client_ident {
            channel: ::brisk::Channel,
        }

        impl #client_ident {
            /// Creates a client that sends its calls over `channel`.
            pub fn new(channel: ::brisk::Channel) -> Self {
                Self { channel }
            }

            /// The channel this client sends its calls over.
            pub fn channel(&self) -> &::brisk::Channel {
                &self.channel
            }

            #(#methods)*
        }
    }
}

/// `name(request)` and `name_with(cntl, request)` for one method, shaped by its kind.
fn emit_method(model: &Checked<'_>, method: &CheckedMethod<'_>) -> TokenStream {
    let codec = &model.codec;
    let full_name = &model.full_name;
    let ident = &method.ident;
    let with_ident = &method.with_ident;
    let input = &method.input;
    let output = &method.output;
    let proto_name = &method.method.proto_name;
    let method_docs = docs(
        &method.method.comments,
        &format!(
            "Calls `{}` with default per-call options.",
            method.full_name
        ),
    );
    let with_docs = format!(
        " Calls `{}` with per-call options and results in `cntl`.",
        method.full_name
    );
    let (param, arg) = if method.method.client_streaming {
        (
            quote! {
                requests: impl ::brisk::codegen::Stream<Item = #input>
                    + ::core::marker::Send
                    + 'static
            },
            quote! { requests },
        )
    } else {
        (quote! { request: #input }, quote! { request })
    };
    let response = if method.method.server_streaming {
        quote! { ::brisk::Streaming<#output> }
    } else {
        quote! { #output }
    };
    // The method's descriptors ride along when the package has them (JSON over HTTP).
    let index = method.index;
    let descriptor = match &model.schema {
        Some(SchemaTokens::Protobuf(constant)) => quote! {
            ::brisk::codegen::MethodDescriptor::new(#full_name, #proto_name)
                .with_index(#index)
                .with_file_descriptor_set(#constant)
        },
        _ => quote! {
            ::brisk::codegen::MethodDescriptor::new(#full_name, #proto_name).with_index(#index)
        },
    };
    let streaming = quote! {
        self.channel
            .streaming::<#codec, #input, #output, _>(&METHOD, cntl, #arg)
            .await
    };
    let body = match (
        method.method.client_streaming,
        method.method.server_streaming,
    ) {
        (false, false) => quote! {
            self.channel
                .unary::<#codec, #input, #output>(&METHOD, cntl, &request)
                .await
        },
        (false, true) => quote! {
            let request = ::brisk::codegen::once(::core::future::ready(request));
            #streaming
        },
        (true, true) => streaming,
        (true, false) => {
            let none = format!("`{}` ended without a response", method.full_name);
            let more = format!("`{}` answered more than one response", method.full_name);
            quote! {
                let mut responses = #streaming?;
                match (responses.message().await?, responses.message().await?) {
                    (::core::option::Option::Some(response), ::core::option::Option::None) => {
                        ::core::result::Result::Ok(response)
                    }
                    (::core::option::Option::None, _) => ::core::result::Result::Err(
                        ::brisk::Status::new(::brisk::errno::ERESPONSE, #none),
                    ),
                    (::core::option::Option::Some(_), ::core::option::Option::Some(_)) => {
                        ::core::result::Result::Err(
                            ::brisk::Status::new(::brisk::errno::ERESPONSE, #more),
                        )
                    }
                }
            }
        }
    };
    quote! {
        #method_docs
        pub async fn #ident(
            &self,
            #param,
        ) -> ::core::result::Result<#response, ::brisk::Status> {
            let mut cntl = ::brisk::Controller::new();
            self.#with_ident(&mut cntl, #arg).await
        }

        #[doc = #with_docs]
        pub async fn #with_ident(
            &self,
            cntl: &mut ::brisk::Controller,
            #param,
        ) -> ::core::result::Result<#response, ::brisk::Status> {
            const METHOD: ::brisk::codegen::MethodDescriptor = #descriptor;
            #body
        }
    }
}
