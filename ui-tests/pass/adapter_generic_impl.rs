//! Generic adapters and generic methods.
#![deny(warnings)]

use athyper::prelude::*;
use athyper::resilience::Adapter;

trait Transport: Send + Sync {
    fn send(&self, bytes: &[u8]) -> usize;
}

struct Loopback;

impl Transport for Loopback {
    fn send(&self, bytes: &[u8]) -> usize {
        bytes.len()
    }
}

struct Client<T> {
    transport: T,
    resilience: AdapterState,
}

#[adapter(name = "client", circuit_breaker, retry = "db")]
impl<T: Transport> Client<T> {
    async fn send(&self, bytes: Vec<u8>) -> Result<usize, std::io::Error> {
        Ok(self.transport.send(&bytes))
    }

    async fn parse<N: std::str::FromStr>(&self, text: &str) -> Result<Option<N>, String> {
        Ok(text.parse().ok())
    }

    async fn echo(&self, text: impl AsRef<str> + Clone) -> Result<String, String> {
        Ok(text.as_ref().to_owned())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let client = Client { transport: Loopback, resilience: AdapterState::new() };
    assert_eq!(client.send(vec![1, 2]).await.unwrap(), 2);
    let n: Option<u8> = client.parse("7").await.unwrap();
    assert_eq!(n, Some(7));
    assert_eq!(client.echo("hi").await.unwrap(), "hi");
    assert_eq!(<Client<Loopback>>::descriptor().type_name, "Client<T>");
}
