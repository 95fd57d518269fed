//! The conformance suite against the embedded backend.

mod conformance;

use std::sync::Arc;

use athyper::queue::{MemoryBackend, SharedBackend};

async fn backend() -> SharedBackend {
    Arc::new(MemoryBackend::new())
}

conformance::suite!(backend);
