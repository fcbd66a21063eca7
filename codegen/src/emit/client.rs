//! The async client `XClient`: a cheap-to-clone stub over a `::brisk::Channel` whose methods
//! take `&self`.

use proc_macro2::TokenStream;
use quote::quote;

use super::{docs, Checked};
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
    let codec = &model.codec;
    let struct_docs = docs(
        &model.service.comments,
        &format!("Async client for `{full_name}`. Cheap to clone; all methods take `&self`."),
    );
    let methods = model.methods.iter().map(|method| {
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
        quote! {
            #method_docs
            pub async fn #ident(
                &self,
                request: #input,
            ) -> ::core::result::Result<#output, ::brisk::Status> {
                let mut cntl = ::brisk::Controller::new();
                self.#with_ident(&mut cntl, request).await
            }

            #[doc = #with_docs]
            pub async fn #with_ident(
                &self,
                cntl: &mut ::brisk::Controller,
                request: #input,
            ) -> ::core::result::Result<#output, ::brisk::Status> {
                const METHOD: ::brisk::codegen::MethodDescriptor =
                    ::brisk::codegen::MethodDescriptor::new(#full_name, #proto_name);
                self.channel
                    .unary::<#codec, #input, #output>(&METHOD, cntl, &request)
                    .await
            }
        }
    });
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
