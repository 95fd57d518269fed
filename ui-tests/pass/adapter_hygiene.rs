//! Names in the user's scope cannot change what an `#[adapter]` expansion
//! means: it reaches everything through `::athyper::__private` and
//! `::core`.
#![deny(warnings)]
#![allow(non_camel_case_types, dead_code, unused_macros)]

mod core {}
mod std {}
mod inventory {}
mod futures {}
type Result = ();
type Option = ();
struct Arc;
struct Box;
struct Duration;
struct BoxFuture;
struct String;
struct AdapterDescriptor;
struct AdapterState;
struct CircuitBreakerConfig;
struct Clone;
trait Send {}
fn call_adapter() {}
fn retry_arg() {}
const DB_RETRY_POLICY: () = ();
const __ATHYPER_ADAPTER: () = ();
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

struct Cache {
    resilience: ::athyper::resilience::AdapterState,
}

#[::athyper::adapter(circuit_breaker, retry = "db", timeout = "1s", health = "ping")]
impl Cache {
    async fn get(&self, key: &str) -> ::core::result::Result<u32, ::std::string::String> {
        ::core::result::Result::Ok(key.len() as u32)
    }

    async fn ping(&self) -> ::core::result::Result<(), ::std::string::String> {
        ::core::result::Result::Ok(())
    }
}

struct Store {
    resilience: ::athyper::resilience::AdapterState,
}

#[::athyper::adapter(retry = "none")]
impl Store {
    async fn put(&self, key: ::std::vec::Vec<u8>) -> ::std::io::Result<usize> {
        ::core::result::Result::Ok(key.len())
    }
}

fn main() {
    let cache = Cache {
        resilience: ::athyper::resilience::AdapterState::new(),
    };
    let runtime = ::tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    ::core::assert_eq!(runtime.block_on(cache.get("abc")), ::core::result::Result::Ok(3));
    let store = Store {
        resilience: ::athyper::resilience::AdapterState::new(),
    };
    ::core::assert_eq!(runtime.block_on(store.put(::std::vec![1])).unwrap(), 1);
}
