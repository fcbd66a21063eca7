//! The blocking client `XBlockingClient`: a thin wrapper over the async `XClient` (see
//! [`super::client`], which must be emitted next to it) that blocks on the channel's runtime.

use proc_macro2::TokenStream;
use quote::quote;

use super::{docs, Checked};
use crate::error::Error;
use crate::model::Service;

/// Emits the blocking client for `service`. The output refers to the async client, so emit
/// [`super::client::generate`] into the same module.
pub fn generate(service: &Service) -> Result<TokenStream, Error> {
    Ok(emit(&Checked::new(service)?))
}

pub(crate) fn emit(model: &Checked<'_>) -> TokenStream {
    let client_ident = &model.client_ident;
    let blocking_ident = &model.blocking_ident;
    let full_name = &model.full_name;
    let vis = &model.vis;
    let mut generated =
        format!("Blocking client for `{full_name}`, for code outside an async runtime.");
    let streaming: Vec<String> = model
        .methods
        .iter()
        .filter(|method| method.method.is_streaming())
        .map(|method| format!("`{}`", method.method.proto_name))
        .collect();
    if !streaming.is_empty() {
        generated.push_str(&format!(
            " Streaming methods ({}) are left out: call them on the async `{client_ident}`.",
            streaming.join(", ")
        ));
    }
    let struct_docs = docs(&model.service.comments, &generated);
    let unary = model
        .methods
        .iter()
        .filter(|method| !method.method.is_streaming());
    let methods = unary.map(|method| {
        let ident = &method.ident;
        let with_ident = &method.with_ident;
        let input = &method.input;
        let output = &method.output;
        let method_docs = docs(
            &method.method.comments,
            &format!(
                "Calls `{}` with default per-call options, blocking until it completes.",
                method.full_name
            ),
        );
        let with_docs = format!(
            " Calls `{}` with per-call options and results in `cntl`, blocking until it \
             completes.",
            method.full_name
        );
        quote! {
            #method_docs
            pub fn #ident(
                &self,
                request: #input,
            ) -> ::core::result::Result<#output, ::brisk::Status> {
                self.inner.channel().block_on(self.inner.#ident(request))
            }

            #[doc = #with_docs]
            pub fn #with_ident(
                &self,
                cntl: &mut ::brisk::Controller,
                request: #input,
            ) -> ::core::result::Result<#output, ::brisk::Status> {
                self.inner
                    .channel()
                    .block_on(self.inner.#with_ident(cntl, request))
            }
        }
    });
    quote! {
        #struct_docs
        #[derive(Debug, Clone)]
        #vis struct #blocking_ident {
            inner: #client_ident,
        }

        impl #blocking_ident {
            /// Creates a client that sends its calls over `channel`.
            pub fn new(channel: ::brisk::Channel) -> Self {
                Self {
                    inner: #client_ident::new(channel),
                }
            }

            /// The channel this client sends its calls over.
            pub fn channel(&self) -> &::brisk::Channel {
                self.inner.channel()
            }

            #(#methods)*
        }
    }
}
