//! Names in the user's scope cannot change what an expansion means: it
//! reaches everything through `::athyper::__private` and `::core`.
#![deny(warnings)]
#![allow(non_camel_case_types, dead_code, unused_macros)]

use athyper::prelude::*;

mod core {}
mod std {}
mod inventory {}
mod serde {}
mod futures {}
type Result = ();
type Option = ();
struct Arc;
struct Box;
struct Duration;
struct BoxFuture;
struct JobDescriptor;
struct JobDefaults;
struct JobFailure;
struct str;
struct Clone;
struct Default;
trait Send {}
fn run_job() {}
fn assert_payload() {}
const __ATHYPER_DESCRIPTOR: () = ();
macro_rules! line {
    () => {
        "not a line"
    };
}
macro_rules! module_path {
    () => {
        0
    };
}

#[athyper::job(timeout = "1s", backoff = "250ms", priority = "low")]
async fn send_email(_ctx: JobContext, _to: String) -> ::core::result::Result<(), String> {
    ::core::result::Result::Ok(())
}

#[athyper::job]
async fn second(_ctx: JobContext, _n: u8) -> ::core::result::Result<(), ::std::string::String> {
    ::core::result::Result::Ok(())
}

fn main() {
    ::core::assert!(send_email.descriptor().line > 0);
    ::core::assert_eq!(second.descriptor().module_path, ::core::module_path!());
}
