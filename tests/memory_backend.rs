//! The conformance suite against the embedded backend.

use std::sync::Arc;

use athyper::queue::{MemoryBackend, SharedBackend};

async fn backend() -> SharedBackend {
    Arc::new(MemoryBackend::new())
}

athyper_conformance::suite!(backend);

mod start_order {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use athyper::prelude::*;
    use athyper::queue::{MemoryBackend, SharedBackend, Worker, WorkerConfig};
    use athyper::registry::Job;

    static STARTED: Mutex<Vec<String>> = Mutex::new(Vec::new());
    static STARTED_AHEAD: Mutex<Vec<String>> = Mutex::new(Vec::new());

    #[athyper::job(queue = "start-order")]
    async fn note_start(_ctx: JobContext, label: String) -> Result<(), String> {
        STARTED.lock().unwrap().push(label);
        Ok(())
    }

    #[athyper::job(queue = "start-order-ahead")]
    async fn note_start_ahead(_ctx: JobContext, label: String) -> Result<(), String> {
        STARTED_AHEAD.lock().unwrap().push(label);
        Ok(())
    }

    /// Adds four jobs of each priority, least urgent first, to a paused
    /// queue, runs them through `worker` and returns the start order
    /// expected: most urgent first, in the order they were added.
    async fn run_by_priority<J: Job<Payload = String>>(
        backend: SharedBackend,
        queue_name: &str,
        job: &J,
        worker: WorkerConfig,
    ) -> Vec<String> {
        let queue = Queue::new(backend.clone(), queue_name).unwrap();
        queue.pause().await.unwrap();
        let mut expected = Vec::new();
        for (name, priority) in [
            ("low", Priority::Low),
            ("normal", Priority::Normal),
            ("high", Priority::High),
            ("critical", Priority::Critical),
        ] {
            let labels: Vec<String> = (0..4).map(|i| format!("{name}-{i}")).collect();
            let mut bulk = queue.bulk();
            for label in &labels {
                bulk.push_with(job, label.clone(), JobOptions::new().priority(priority))
                    .unwrap();
            }
            bulk.submit().await.unwrap();
            expected.splice(0..0, labels);
        }
        let worker = Worker::builder(backend, queue_name)
            .handler(job)
            .config(worker)
            .build()
            .unwrap()
            .start();
        queue.resume().await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while queue.counts().await.unwrap().completed() < 16 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the jobs did not complete"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        worker.shutdown(Duration::from_secs(10)).await;
        expected
    }

    /// A runtime thread runs the task spawned last before the others; the
    /// jobs of one step still start in the order the worker took them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_step_starts_its_jobs_most_urgent_first() {
        let backend: SharedBackend = Arc::new(MemoryBackend::new());
        let config = WorkerConfig::default().concurrency(8);
        let expected = run_by_priority(backend, "start-order", &note_start, config).await;
        assert_eq!(*STARTED.lock().unwrap(), expected);
    }

    /// Jobs taken ahead start one by one as slots free, each after the
    /// one before it, most urgent first.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn jobs_taken_ahead_start_most_urgent_first() {
        let backend: SharedBackend = Arc::new(MemoryBackend::new());
        let config = WorkerConfig::default().concurrency(2).prefetch(6);
        let expected =
            run_by_priority(backend, "start-order-ahead", &note_start_ahead, config).await;
        assert_eq!(*STARTED_AHEAD.lock().unwrap(), expected);
    }
}
