//! The conformance suite against the embedded backend.

use std::sync::Arc;

use athyper::queue::{MemoryBackend, SharedBackend};

async fn backend() -> SharedBackend {
    Arc::new(MemoryBackend::new())
}

athyper_conformance::suite!(backend);
