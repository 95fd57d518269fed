use std::fmt::Display;

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;

/// Every error found in one macro invocation.
///
/// Stages push into it and go on, so the user sees all of their mistakes in
/// one build instead of fixing them one compile at a time.
#[derive(Default)]
pub(crate) struct Errors {
    /// Each error with the position of the option it is about, so that
    /// errors found by different stages still read in source order; errors
    /// about the item come after those about the attribute.
    errors: Vec<(usize, syn::Error)>,
}

impl Errors {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// An error about the item, or about the attribute as a whole.
    pub(crate) fn push(&mut self, error: syn::Error) {
        self.errors.push((usize::MAX, error));
    }

    /// An error about the option written at `position`.
    pub(crate) fn push_at(&mut self, position: usize, error: syn::Error) {
        self.errors.push((position, error));
    }

    /// An error at one token.
    pub(crate) fn at(&mut self, span: Span, message: impl Display) {
        self.push(syn::Error::new(span, message));
    }

    /// An error covering `tokens`, from their first token to their last.
    pub(crate) fn spanned(&mut self, tokens: impl ToTokens, message: impl Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    pub(crate) fn append(&mut self, other: Errors) {
        self.errors.extend(other.errors);
    }

    /// Files every error of `other` under `position`, keeping their order:
    /// errors inside a nested option read where that option is.
    pub(crate) fn append_at(&mut self, position: usize, other: Errors) {
        for error in other.sorted() {
            self.errors.push((position, error.clone()));
        }
    }

    /// How many errors so far: a stage compares it before and after to know
    /// whether it found any.
    pub(crate) fn len(&self) -> usize {
        self.errors.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// One `compile_error!` per error, in source order.
    pub(crate) fn to_compile_errors(&self) -> TokenStream {
        self.sorted().map(syn::Error::to_compile_error).collect()
    }

    fn sorted(&self) -> impl Iterator<Item = &syn::Error> {
        let mut errors: Vec<&(usize, syn::Error)> = self.errors.iter().collect();
        // Stable: errors about one option keep the order they were found in.
        errors.sort_by_key(|(position, _)| *position);
        errors.into_iter().map(|(_, error)| error)
    }

    #[cfg(test)]
    pub(crate) fn messages(&self) -> Vec<String> {
        self.sorted().map(ToString::to_string).collect()
    }
}
