//! The backend conformance suite: every rule an athyper queue backend
//! keeps, run unchanged against each backend.
//!
//! A backend author runs it from an integration test of their own crate:
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use athyper::queue::{MemoryBackend, SharedBackend};
//!
//! /// A fresh, empty backend for each case.
//! async fn backend() -> SharedBackend {
//!     Arc::new(MemoryBackend::new())
//! }
//!
//! athyper_conformance::suite!(backend);
//! # fn main() {}
//! ```
//!
//! The macro expands to one `#[tokio::test]` per case (see [`CASES`]), so
//! `cargo test` reports and filters them one by one. Each case takes a fresh
//! backend from the factory, so cases never see each other's jobs; a
//! backend on a shared server keeps them apart with a key prefix of its
//! own per call. Every case is also a public `async fn(SharedBackend)`, for
//! a harness that runs them another way.
//!
//! Cases consume the queue [`QUEUE`] with handlers this crate registers
//! (`record`, `flaky`, `slow`, …). Timing margins are wide: a case checks
//! what happens and in which order, never how fast.

/// The queue every case uses.
pub const QUEUE: &str = "conformance";

/// Expands to one test per conformance case, each on a fresh backend from
/// the async fn `$factory` (`async fn() -> SharedBackend`).
#[macro_export]
macro_rules! suite {
    ($factory:path) => {
        $crate::__cases!([$crate::__suite] $factory;);
    };
}

/// The names of every case, in the order [`suite!`] declares them.
pub const CASES: &[&str] = __cases!([case_names]);

macro_rules! case_names {
    ($($case:ident),* $(,)?) => {
        &[$(stringify!($case)),*]
    };
}
use case_names;

/// Not public API: the one list of cases, handed to `$callback`.
#[doc(hidden)]
#[macro_export]
macro_rules! __cases {
    ([$($callback:tt)*] $($extra:tt)*) => {
        $($callback)*! {
            $($extra)*
            priority_then_fifo,
            bulk_add_keeps_order,
            caller_ids_are_idempotent,
            bad_ids_are_rejected,
            delayed_jobs_wait_until_due,
            due_delayed_jobs_join_the_back_of_their_priority,
            failed_attempt_is_scheduled_for_retry,
            exhausted_attempts_fail_with_every_error,
            retry_failed_requeues_with_fresh_attempts,
            pause_and_resume,
            counts_by_state_and_priority,
            clean_removes_old_finished_jobs,
            retention_bounds_completed_jobs,
            remove_takes_out_any_idle_job,
            expired_lease_requeues_then_fails_as_stalled,
            heartbeat_keeps_the_lease,
            a_recovered_lease_stays_lost,
            recovery_spares_the_worker_running_it,
            release_puts_jobs_back_in_their_place,
            late_ack_of_a_recovered_job_changes_nothing,
            a_repeated_ack_is_not_lost,
            reclaim_keeps_what_the_worker_knows,
            wait_wakes_on_add,
            per_name_limits_skip_saturated_handlers,
            progress_is_kept,
            listing_orders,
            worker_runs_jobs_by_priority,
            worker_retries_with_backoff,
            worker_fails_after_the_last_attempt,
            undecodable_payload_fails_without_retry,
            unknown_job_fails_without_retry,
            worker_concurrency_is_never_exceeded,
            handler_concurrency_is_never_exceeded,
            timeout_cancels_the_attempt,
            panic_fails_the_attempt,
            worker_runs_delayed_job_when_due,
            drain_lets_running_jobs_finish,
            drain_deadline_puts_jobs_back,
            jobs_taken_ahead_wait_their_turn_and_go_back_on_drain,
            a_job_cancelled_while_taken_ahead_is_cancelled,
            shutdown_interruption_spends_no_attempt,
            lost_fetch_replies_run_nothing_twice,
            release_is_retried_at_shutdown,
            a_cut_off_worker_stops_attempts_it_lost,
            a_panicking_loop_lets_its_lease_expire,
            more_jobs_than_asked_never_exceed_concurrency,
            overlapping_steps_stay_within_the_concurrency,
            a_job_cancelled_on_its_way_to_the_worker_is_cancelled,
            cancellation_comes_before_the_abort,
            queues_are_discovered,
            workers_are_listed_with_what_they_hold,
            jobs_are_found_by_name_in_pages,
            promote_makes_a_delayed_job_due,
            throughput_counts_settled_jobs_per_minute,
            bulk_actions_go_in_steps,
            each_tick_makes_one_job,
            missed_ticks_are_skipped_or_caught_up,
            schedules_ask_for_more_ticks,
            schedules_are_upserted_listed_and_removed,
            rate_limits_hold_across_workers,
            handler_rate_limits_leave_other_handlers_alone,
            deferrals_spend_no_attempt_and_are_bounded,
            a_snoozing_handler_runs_again_uncounted,
            an_open_breaker_defers_instead_of_failing,
            unique_keys_block_duplicates_after_the_job_finished,
            debounce_replaces_the_waiting_job,
            handlers_reach_shared_data,
            queue_rejects_jobs_of_another_queue,
            results_are_kept_and_waited_for,
            events_follow_each_job,
            cancel_ends_waiting_and_delayed_jobs_at_once,
            cancel_stops_a_running_job_in_its_worker,
            a_flow_parent_runs_after_its_children,
            a_child_failure_fails_ignores_or_continues,
            flows_nest_three_levels,
            cancelling_or_removing_a_parent_cancels_its_children,
            adding_a_flow_again_adds_nothing_twice,
            children_ending_in_any_order_release_each_parent_once,
        }
    };
}

/// Not public API: one test per case.
#[doc(hidden)]
#[macro_export]
macro_rules! __suite {
    ($factory:path; $($case:ident),* $(,)?) => {
        $(
            #[$crate::__private::tokio::test(
                crate = "::athyper_conformance::__private::tokio",
                flavor = "multi_thread",
                worker_threads = 2
            )]
            async fn $case() {
                let backend = $factory().await;
                $crate::$case(backend).await;
            }
        )*
    };
}

mod admin;
mod backend;
pub mod faults;
mod flow_control;
pub mod flows;
mod support;
mod worker;

pub use crate::admin::*;
pub use crate::backend::*;
pub use crate::faults::{
    a_cut_off_worker_stops_attempts_it_lost, a_job_cancelled_on_its_way_to_the_worker_is_cancelled,
    a_panicking_loop_lets_its_lease_expire, cancellation_comes_before_the_abort,
    lost_fetch_replies_run_nothing_twice, more_jobs_than_asked_never_exceed_concurrency,
    overlapping_steps_stay_within_the_concurrency, release_is_retried_at_shutdown,
};
pub use crate::flow_control::*;
pub use crate::flows::{
    a_child_failure_fails_ignores_or_continues, a_flow_parent_runs_after_its_children,
    adding_a_flow_again_adds_nothing_twice, cancelling_or_removing_a_parent_cancels_its_children,
    children_ending_in_any_order_release_each_parent_once, flows_nest_three_levels,
};
pub use crate::support::{Measured, Probe, Typed};
pub use crate::worker::*;

/// Not public API: what the [`suite!`] expansion names.
#[doc(hidden)]
pub mod __private {
    pub use tokio;
}
