//! Support shared by the workspace's examples, benchmarks and integration
//! tests. The SDK itself is the `athyper` crate.
