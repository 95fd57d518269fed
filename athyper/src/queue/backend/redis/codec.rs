//! How a job is written in Redis and read back.
//!
//! A job's fixed part is one hash field, `K:jobs[id]`:
//!
//! ```text
//! 2|<priority 0-3>|<name>|<max attempts>|<timeout ms or empty>|<backoff>|<trace>|<max deferrals>|<enqueued ms>|<payload JSON>
//! ```
//!
//! (version 1, without the max deferrals, is still read)
//!
//! with the backoff as `<kind><base ms>,<max ms>,<jitter>` (kind `f`, `l`,
//! `e`; jitter `n`, `f`, `e`) and the trace as
//! `<traceparent>;<tracestate>;<request id>` (each may be empty; `%`, `|`
//! and `;` inside them are percent-escaped). One field per waiting job, rather than a hash
//! per job, keeps a waiting job to one hash entry and one sorted-set entry.
//! Names never contain `|`, and the payload comes last, so it may.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::queue::backend::{NewJob, WorkerInfo};
use crate::queue::flow::ParentRef;
use crate::queue::job::{AttemptError, Deferral, JobId, JobInfo, JobState, JobTrace, Priority};
use crate::queue::schedule::ScheduleEntry;
use crate::queue::time::{duration_millis, from_millis};
use crate::resilience::{Backoff, BackoffKind, Jitter};

/// The record up to the enqueued time, which the add script appends.
pub(super) fn head(job: &NewJob) -> String {
    let timeout = job
        .timeout
        .map(|t| duration_millis(t).to_string())
        .unwrap_or_default();
    let b = job.backoff;
    let kind = match b.kind() {
        BackoffKind::Fixed => 'f',
        BackoffKind::Linear => 'l',
        BackoffKind::Exponential => 'e',
    };
    let jitter = match b.jitter() {
        Jitter::None => 'n',
        Jitter::Full => 'f',
        Jitter::Equal => 'e',
    };
    format!(
        "2|{}|{}|{}|{timeout}|{kind}{},{},{jitter}|{}|{}|",
        job.priority.index(),
        job.name,
        job.max_attempts,
        duration_millis(b.base()),
        duration_millis(b.max()),
        encode_trace(&job.trace),
        job.max_deferrals,
    )
}

fn escape(text: &str) -> String {
    text.replace('%', "%25")
        .replace('|', "%7C")
        .replace(';', "%3B")
}

fn unescape(text: &str) -> String {
    text.replace("%3B", ";")
        .replace("%7C", "|")
        .replace("%25", "%")
}

fn encode_trace(trace: &JobTrace) -> String {
    if trace.is_empty() {
        return String::new();
    }
    let field = |f: &Option<String>| f.as_deref().map(escape).unwrap_or_default();
    format!(
        "{};{};{}",
        field(&trace.traceparent),
        field(&trace.tracestate),
        field(&trace.request_id)
    )
}

fn decode_trace(text: &str) -> JobTrace {
    let mut parts = text
        .split(';')
        .map(|p| (!p.is_empty()).then(|| unescape(p)));
    JobTrace {
        traceparent: parts.next().flatten(),
        tracestate: parts.next().flatten(),
        request_id: parts.next().flatten(),
    }
}

/// The fixed part of a job, read from its record.
pub(super) struct Record {
    pub(super) priority: Priority,
    pub(super) name: String,
    pub(super) max_attempts: u32,
    pub(super) timeout: Option<Duration>,
    pub(super) backoff: Backoff,
    pub(super) trace: JobTrace,
    pub(super) max_deferrals: u32,
    pub(super) enqueued_ms: u64,
    pub(super) payload: Arc<str>,
}

/// Why a record could not be read.
pub(super) fn parse_record(bytes: &[u8]) -> Result<Record, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
    let version = text.split('|').next().unwrap_or_default();
    let fields = match version {
        "1" => 9,
        "2" => 10,
        _ => return Err(format!("unknown record version `{version}`")),
    };
    let mut parts = text.splitn(fields, '|');
    let mut next = |what: &str| parts.next().ok_or_else(|| format!("the {what} is missing"));
    next("version")?;
    let priority = next("priority")?
        .parse::<usize>()
        .ok()
        .and_then(Priority::from_index)
        .ok_or("the priority is not 0 to 3")?;
    let name = next("name")?.to_owned();
    let max_attempts = next("attempt limit")?
        .parse()
        .map_err(|_| "the attempt limit is not a number")?;
    let timeout = match next("timeout")? {
        "" => None,
        ms => Some(Duration::from_millis(
            ms.parse().map_err(|_| "the timeout is not a number")?,
        )),
    };
    let backoff = parse_backoff(next("backoff")?).ok_or("the backoff is malformed")?;
    let trace = decode_trace(next("trace context")?);
    let max_deferrals = if version == "1" {
        crate::queue::backend::DEFAULT_MAX_DEFERRALS
    } else {
        next("deferral limit")?
            .parse()
            .map_err(|_| "the deferral limit is not a number")?
    };
    let enqueued_ms = next("enqueue time")?
        .parse()
        .map_err(|_| "the enqueue time is not a number")?;
    let payload = next("payload")?.into();
    Ok(Record {
        priority,
        name,
        max_attempts,
        timeout,
        backoff,
        trace,
        max_deferrals,
        enqueued_ms,
        payload,
    })
}

fn parse_backoff(text: &str) -> Option<Backoff> {
    let mut chars = text.chars();
    let kind = match chars.next()? {
        'f' => BackoffKind::Fixed,
        'l' => BackoffKind::Linear,
        'e' => BackoffKind::Exponential,
        _ => return None,
    };
    let mut fields = chars.as_str().split(',');
    let base = fields.next()?.parse().ok()?;
    let max = fields.next()?.parse().ok()?;
    let jitter = match fields.next()? {
        "n" => Jitter::None,
        "f" => Jitter::Full,
        "e" => Jitter::Equal,
        _ => return None,
    };
    Some(
        Backoff::new(kind, Duration::from_millis(base))
            .with_max(Duration::from_millis(max))
            .with_jitter(jitter),
    )
}

pub(super) fn state_code(state: JobState) -> &'static str {
    match state {
        JobState::Waiting => "w",
        JobState::Delayed => "d",
        JobState::WaitingChildren => "p",
        JobState::Active => "a",
        JobState::Completed => "c",
        JobState::Failed => "f",
        JobState::Cancelled => "k",
    }
}

pub(super) fn parse_state(code: &str) -> Option<JobState> {
    JobState::ALL.into_iter().find(|s| state_code(*s) == code)
}

fn ms_field(fields: &HashMap<String, String>, key: &str) -> Option<u64> {
    fields.get(key).and_then(|v| v.parse().ok())
}

/// An attempt error as the scripts store it: `<attempt>|<ms>|<message>`.
fn parse_error(entry: &str) -> AttemptError {
    let mut parts = entry.splitn(3, '|');
    let attempt = parts.next().and_then(|a| a.parse().ok()).unwrap_or(0);
    let at = parts.next().and_then(|a| a.parse().ok()).unwrap_or(0);
    AttemptError {
        attempt,
        at: from_millis(at),
        message: parts.next().unwrap_or(entry).to_owned(),
    }
}

/// A job as `get` and `list` return it: id, record, state code, the state
/// hash, the error list and the deferral list.
pub(super) type InfoReply = (
    String,
    Vec<u8>,
    String,
    HashMap<String, String>,
    Vec<String>,
    Vec<String>,
);

/// A deferral as the scripts store it: `<ms>|<delay ms>|<reason>`.
fn parse_deferral(entry: &str) -> Deferral {
    let mut parts = entry.splitn(3, '|');
    let at = parts.next().and_then(|a| a.parse().ok()).unwrap_or(0);
    let delay = parts.next().and_then(|a| a.parse().ok()).unwrap_or(0);
    Deferral {
        at: from_millis(at),
        delay: Duration::from_millis(delay),
        reason: parts.next().unwrap_or(entry).to_owned(),
    }
}

pub(super) fn info_from_reply(reply: InfoReply) -> Result<JobInfo, String> {
    let (id, raw, state, fields, errors, deferrals) = reply;
    let state =
        parse_state(&state).ok_or_else(|| format!("job `{id}`: unknown state `{state}`"))?;
    let record = parse_record(&raw).unwrap_or_else(|reason| {
        // A damaged record is still shown, raw, so that it can be inspected
        // and removed: its job failed with the reason when a worker took it.
        Record {
            priority: fields
                .get("p")
                .and_then(|p| p.parse().ok())
                .and_then(Priority::from_index)
                .unwrap_or_default(),
            name: fields.get("n").cloned().unwrap_or_default(),
            max_attempts: 0,
            timeout: None,
            backoff: Backoff::default(),
            trace: JobTrace::default(),
            max_deferrals: 0,
            enqueued_ms: 0,
            payload: format!(
                "{} (unreadable record: {reason})",
                String::from_utf8_lossy(&raw)
            )
            .into(),
        }
    });
    let enqueued = record.enqueued_ms;
    Ok(JobInfo {
        id: JobId::from(id),
        name: record.name,
        payload: record.payload,
        priority: record.priority,
        state,
        attempts_made: ms_field(&fields, "a").map_or(0, |a| a as u32),
        max_attempts: record.max_attempts,
        backoff: record.backoff,
        timeout: record.timeout,
        enqueued_at: from_millis(enqueued),
        due_at: from_millis(ms_field(&fields, "d").unwrap_or(enqueued)),
        started_at: ms_field(&fields, "t").map(from_millis),
        finished_at: ms_field(&fields, "f").map(from_millis),
        stalled: ms_field(&fields, "s").map_or(0, |s| s as u32),
        errors: errors.iter().map(|e| parse_error(e)).collect(),
        progress: fields.get("g").cloned(),
        result: fields.get("r").cloned(),
        trace: record.trace,
        max_deferrals: record.max_deferrals,
        deferrals: deferrals.iter().map(|d| parse_deferral(d)).collect(),
        parent: match (fields.get("uq"), fields.get("ui"), ms_field(&fields, "un")) {
            (Some(queue), Some(id), Some(index)) => Some(ParentRef::new(
                queue.clone(),
                JobId::from(id.as_str()),
                index as u32,
            )),
            _ => None,
        },
        children: ms_field(&fields, "pc").map_or(0, |n| n as u32),
    })
}

/// A worker as `workers.lua` returns it: id, lease expiry ms (-1: none),
/// its announcement (JSON, or empty) and the ids it holds.
pub(super) fn worker_info(
    id: String,
    expiry: f64,
    announcement: &str,
    running: Vec<String>,
) -> WorkerInfo {
    let said: serde_json::Value = serde_json::from_str(announcement).unwrap_or_default();
    let mut info = WorkerInfo::new(id, 0, Vec::new());
    info.host = said["host"].as_str().unwrap_or_default().to_owned();
    info.pid = said["pid"].as_u64().map_or(0, |p| p as u32);
    info.concurrency = said["concurrency"].as_u64().map_or(0, |c| c as usize);
    info.handlers = said["handlers"]
        .as_array()
        .map(|h| {
            h.iter()
                .filter_map(|n| n.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    info.started_at = from_millis(said["started_ms"].as_u64().unwrap_or(0));
    info.lease_expires_at = (expiry >= 0.0).then(|| from_millis(expiry as u64));
    info.running = running.into_iter().map(JobId::from).collect();
    info
}

/// Ticks as the scripts keep them: comma-separated ms.
pub(super) fn ticks_text(ticks: &[u64]) -> String {
    ticks
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// A schedule as `schedule_list.lua` returns it: id, head, payload, spec,
/// missed policy, grace ms, ticks, last tick.
pub(super) type ScheduleReply = (
    String,
    Vec<u8>,
    Vec<u8>,
    String,
    String,
    u64,
    String,
    String,
);

pub(super) fn schedule_entry(reply: ScheduleReply) -> Result<ScheduleEntry, String> {
    let (id, head, payload, spec, missed, grace, ticks, last) = reply;
    let mut record = head;
    record.extend_from_slice(b"0|");
    record.extend_from_slice(&payload);
    let record = parse_record(&record).map_err(|e| format!("schedule `{id}`: {e}"))?;
    let mut job = NewJob::new(record.name, record.payload);
    job.priority = record.priority;
    job.max_attempts = record.max_attempts;
    job.backoff = record.backoff;
    job.timeout = record.timeout;
    job.max_deferrals = record.max_deferrals;
    Ok(ScheduleEntry {
        id,
        job,
        spec,
        missed: missed.parse()?,
        grace: Duration::from_millis(grace),
        ticks: ticks.split(',').filter_map(|t| t.parse().ok()).collect(),
        last_tick: last.parse().ok(),
    })
}

/// A job as `fetch` hands it out: id, record, attempts made, times
/// stalled, due ms (empty if never delayed).
pub(super) type FetchedReply = (String, Vec<u8>, String, String, String);

/// A fetched job, or the id, attempt and reason of one whose record does
/// not decode.
pub(super) fn fetched_job(
    reply: FetchedReply,
    now_ms: u64,
) -> Result<JobInfo, (JobId, u32, String)> {
    let (id, record, attempts, stalled, due) = reply;
    let id = JobId::from(id);
    let attempts_made: u32 = attempts.parse().unwrap_or(0);
    let record = match parse_record(&record) {
        Ok(record) => record,
        Err(reason) => return Err((id, attempts_made.saturating_add(1), reason)),
    };
    Ok(JobInfo {
        id,
        name: record.name,
        payload: record.payload,
        priority: record.priority,
        state: JobState::Active,
        attempts_made,
        max_attempts: record.max_attempts,
        backoff: record.backoff,
        timeout: record.timeout,
        enqueued_at: from_millis(record.enqueued_ms),
        due_at: from_millis(due.parse().unwrap_or(record.enqueued_ms)),
        started_at: Some(from_millis(now_ms)),
        finished_at: None,
        stalled: stalled.parse().unwrap_or(0),
        errors: Vec::new(),
        progress: None,
        result: None,
        trace: record.trace,
        max_deferrals: record.max_deferrals,
        deferrals: Vec::new(),
        parent: None,
        children: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let mut job = NewJob::new("send_email", r#"{"to":"a|b"}"#);
        job.priority = Priority::High;
        job.max_attempts = 5;
        job.timeout = Some(Duration::from_secs(30));
        job.backoff = Backoff::linear(Duration::from_millis(250))
            .with_max(Duration::from_secs(9))
            .with_jitter(Jitter::Full);
        job.trace = JobTrace {
            traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
            tracestate: Some("vendor=a|b;c".into()),
            request_id: None,
        };
        let head = head(&job);
        assert_eq!(
            head,
            "2|1|send_email|5|30000|l250,9000,f|00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01;vendor=a%7Cb%3Bc;|1000|"
        );
        let record = format!("{head}1764000000000|{}", job.payload);
        let parsed = parse_record(record.as_bytes()).unwrap();
        assert_eq!(parsed.priority, Priority::High);
        assert_eq!(parsed.name, "send_email");
        assert_eq!(parsed.max_attempts, 5);
        assert_eq!(parsed.timeout, Some(Duration::from_secs(30)));
        assert_eq!(parsed.backoff, job.backoff);
        assert_eq!(parsed.trace, job.trace);
        assert_eq!(parsed.enqueued_ms, 1_764_000_000_000);
        assert_eq!(&*parsed.payload, r#"{"to":"a|b"}"#);
    }

    #[test]
    fn damaged_records_say_what_is_wrong() {
        assert_eq!(
            parse_record(b"garbage").err().unwrap(),
            "unknown record version `garbage`"
        );
        assert_eq!(
            parse_record(b"1|9|x").err().unwrap(),
            "the priority is not 0 to 3"
        );
        assert_eq!(
            parse_record(b"1|2|x|3||e1,2,q||5|{}").err().unwrap(),
            "the backoff is malformed"
        );
        assert!(
            parse_record(&[0xff, 0xfe])
                .err()
                .unwrap()
                .starts_with("not UTF-8")
        );
    }

    #[test]
    fn errors_keep_pipes_in_messages() {
        let e = parse_error("2|1764000000000|upstream said a|b");
        assert_eq!((e.attempt, e.message.as_str()), (2, "upstream said a|b"));
    }
}
