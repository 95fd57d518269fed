//! Option lists and the forms of option values, for both attributes:
//! bare flags (`required`), `key = value` pairs and nested lists
//! (`circuit_breaker(failure_threshold = 5)`).

use proc_macro2::{TokenStream, TokenTree};
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{Expr, ExprLit, ExprUnary, Ident, Lit, LitInt, LitStr, Token, UnOp};

use super::Errors;

/// How an option was written, after its key.
pub(crate) enum Value {
    /// Nothing: `required`.
    Flag,
    /// `= value`.
    Expr(Expr),
    /// `(...)`, its tokens unparsed.
    List(TokenStream),
}

/// Parses `key`, `key = value` and `key(...)` options separated by commas,
/// calling `option` for each with its position; a malformed option is
/// reported and skipped so that the rest are still read. `example` shows a
/// well-formed option, for messages.
pub(crate) fn parse_options(
    input: ParseStream<'_>,
    errors: &mut Errors,
    example: &str,
    mut option: impl FnMut(&mut Errors, Ident, Value, usize),
) {
    let mut position = 0;
    while !input.is_empty() {
        match parse_one(input, example) {
            Ok((key, value)) => option(errors, key, value, position),
            Err(error) => {
                errors.push_at(position, error);
                skip_past_comma(input);
                position += 1;
                continue;
            }
        }
        if !input.is_empty()
            && let Err(error) = input.parse::<Token![,]>()
        {
            let message = format!("expected `,` between options, as in `{example}`");
            errors.push_at(position, syn::Error::new(error.span(), message));
            skip_past_comma(input);
        }
        position += 1;
    }
}

fn parse_one(input: ParseStream<'_>, example: &str) -> syn::Result<(Ident, Value)> {
    // `parse_any` because some keys, such as `crate`, are keywords.
    let key = input.call(Ident::parse_any).map_err(|error| {
        syn::Error::new(
            error.span(),
            format!("expected an option, as in `{example}`"),
        )
    })?;
    let value = if input.peek(Token![=]) {
        input.parse::<Token![=]>()?;
        Value::Expr(ungroup(input.parse()?))
    } else if input.peek(syn::token::Paren) {
        let content;
        syn::parenthesized!(content in input);
        Value::List(content.parse()?)
    } else {
        Value::Flag
    };
    Ok((key, value))
}

/// A value a `macro_rules!` passed on as a fragment (`$queue:literal`,
/// `$n:expr`) arrives in invisible delimiters: the value is what is
/// inside.
fn ungroup(expr: Expr) -> Expr {
    match expr {
        Expr::Group(group) => ungroup(*group.expr),
        other => other,
    }
}

/// Parses a nested list such as the inside of `circuit_breaker(...)`, its
/// errors filed at the position of the option holding it.
pub(crate) fn parse_nested(
    tokens: TokenStream,
    errors: &mut Errors,
    position: usize,
    example: &str,
    mut option: impl FnMut(&mut Errors, Ident, Value),
) {
    let mut nested = Errors::new();
    let parser = |input: ParseStream<'_>| {
        parse_options(input, &mut nested, example, |errors, key, value, _| {
            option(errors, key, value);
        });
        Ok(())
    };
    if let Err(error) = parser.parse2(tokens) {
        nested.push(error);
    }
    errors.append_at(position, nested);
}

/// Moves past the rest of a broken option so that the next one still gets
/// checked.
fn skip_past_comma(input: ParseStream<'_>) {
    let _ = input.step(|cursor| {
        let mut rest = *cursor;
        while let Some((tree, next)) = rest.token_tree() {
            rest = next;
            if matches!(&tree, TokenTree::Punct(p) if p.as_char() == ',') {
                break;
            }
        }
        Ok(((), rest))
    });
}

/// The option's name as written, without `r#`.
pub(crate) fn key_name(key: &Ident) -> String {
    key.unraw().to_string()
}

/// A string literal value.
pub(crate) fn string(key: &str, value: Value, example: &str, at: &Ident) -> syn::Result<LitStr> {
    match value {
        Value::Expr(Expr::Lit(ExprLit {
            lit: Lit::Str(lit), ..
        })) => Ok(lit),
        other => Err(wrong_form(key, "a string", example, &other, at)),
    }
}

/// An integer literal value.
pub(crate) fn integer(key: &str, value: Value, example: &str, at: &Ident) -> syn::Result<LitInt> {
    match value {
        Value::Expr(Expr::Lit(ExprLit {
            lit: Lit::Int(lit), ..
        })) => Ok(lit),
        // `window = "20"`: suggest the very number they meant.
        Value::Expr(Expr::Lit(ExprLit {
            lit: Lit::Str(lit), ..
        })) if lit.value().trim().parse::<u32>().is_ok() => {
            let text = lit.value().trim().to_owned();
            let found = Value::Expr(syn::parse_quote!(#lit));
            Err(wrong_form(key, "an integer", &text, &found, at))
        }
        other => Err(wrong_form(key, "an integer", example, &other, at)),
    }
}

/// A number literal, integer or float, kept as written for the model to
/// read: `0.5`, `1`.
pub(crate) fn number(key: &str, value: Value, example: &str, at: &Ident) -> syn::Result<Lit> {
    match value {
        Value::Expr(Expr::Lit(ExprLit {
            lit: lit @ (Lit::Float(_) | Lit::Int(_)),
            ..
        })) => Ok(lit),
        other => Err(wrong_form(key, "a number", example, &other, at)),
    }
}

/// A bare flag.
pub(crate) fn flag(key: &str, value: Value, hint: &str, at: &Ident) -> syn::Result<Ident> {
    match value {
        Value::Flag => Ok(at.clone()),
        Value::Expr(expr) => Err(syn::Error::new_spanned(
            expr,
            format!("option `{key}` takes no value; {hint}"),
        )),
        Value::List(tokens) => Err(syn::Error::new_spanned(
            tokens,
            format!("option `{key}` takes no value; {hint}"),
        )),
    }
}

/// The message for a value of the wrong form, spanned at the value (or at
/// the key when there is none).
pub(crate) fn wrong_form(
    key: &str,
    expected: &str,
    example: &str,
    found: &Value,
    at: &Ident,
) -> syn::Error {
    let expr = match found {
        Value::Flag => {
            return syn::Error::new(
                at.span(),
                format!("option `{key}` needs a value, as in `{key} = {example}`"),
            );
        }
        Value::List(_) => {
            return syn::Error::new(
                at.span(),
                format!("option `{key}` takes {expected}, not a list; write `{key} = {example}`"),
            );
        }
        Value::Expr(expr) => expr,
    };
    wrong_expr(key, expected, example, expr)
}

/// The message for an expression of the wrong form, spanned at it.
pub(crate) fn wrong_expr(key: &str, expected: &str, example: &str, expr: &Expr) -> syn::Error {
    let found_what = match expr {
        Expr::Lit(ExprLit { lit, .. }) => match lit {
            Lit::Str(_) => "a string",
            Lit::Int(_) => "an integer",
            Lit::Float(_) => "a float",
            Lit::Bool(_) => "a boolean",
            Lit::Char(_) => "a character",
            Lit::Byte(_) => "a byte",
            Lit::ByteStr(_) | Lit::CStr(_) => "a byte string",
            _ => "this literal",
        },
        Expr::Unary(ExprUnary {
            op: UnOp::Neg(_), ..
        }) => "a negative number",
        // A lowercase word where a string belongs is a value written
        // without its quotes: `priority = high`.
        Expr::Path(path) if expected == "a string" && unquoted_word(path).is_some() => {
            let word = unquoted_word(path).unwrap_or_default();
            return syn::Error::new_spanned(
                expr,
                format!("option `{key}` takes a string; quote the value: `{key} = \"{word}\"`"),
            );
        }
        // A constant or an expression: the macro sees only tokens, so it
        // cannot know their values.
        Expr::Path(_) => {
            return syn::Error::new_spanned(
                expr,
                format!(
                    "option `{key}` takes {expected} literal: the macro reads it at compile time, so constants cannot be used; write `{key} = {example}`"
                ),
            );
        }
        _ => "an expression",
    };
    syn::Error::new_spanned(
        expr,
        format!("option `{key}` takes {expected}, not {found_what}; write `{key} = {example}`"),
    )
}

/// The word of a path that is one lowercase identifier, such as `high` in
/// `priority = high`: a value that lost its quotes rather than a constant,
/// which would be written in capitals.
pub(crate) fn unquoted_word(path: &syn::ExprPath) -> Option<String> {
    if path.qself.is_some() || path.path.leading_colon.is_some() {
        return None;
    }
    let ident = path.path.get_ident()?;
    let word = ident.unraw().to_string();
    word.chars().any(|c| c.is_ascii_lowercase()).then_some(word)
}

/// A comma-separated list, for `#[adapter(skip)]` on a method.
pub(crate) fn idents(tokens: TokenStream) -> syn::Result<Vec<Ident>> {
    let parser = Punctuated::<Ident, Token![,]>::parse_terminated;
    Ok(parser.parse2(tokens)?.into_iter().collect())
}
