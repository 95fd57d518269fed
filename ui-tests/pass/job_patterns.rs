//! Argument patterns stay with the body: `_ctx`, destructuring, `mut`.
#![deny(warnings)]

use athyper::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Email {
    to: String,
    subject: String,
}

#[athyper::job]
async fn destructured(_ctx: JobContext, Email { to, .. }: Email) -> Result<(), String> {
    if to.is_empty() {
        Err("no recipient".into())
    } else {
        Ok(())
    }
}

#[athyper::job]
async fn mutable(mut ctx: JobContext, mut email: Email) -> Result<(), String> {
    email.subject.push('!');
    ctx = ctx.clone();
    let _ = (ctx.attempt(), email.to);
    Ok(())
}

#[athyper::job]
async fn tuple(_: JobContext, (a, b): (u32, u32)) -> Result<(), String> {
    if a + b > 10 {
        Err("too big".into())
    } else {
        Ok(())
    }
}

fn main() {
    let _ = (destructured, mutable, tuple);
}
