//! Job events in Redis: each script that changes jobs writes its events as
//! one entry of the queue's stream `K:events` (`XADD … MAXLEN ~`), so an
//! event costs a share of one command, not a command of its own.
//!
//! History is read with `XRANGE`. The live feed is one task per queue and
//! process, blocked in `XREAD` on a connection of its own while anyone
//! here subscribes, fanning batches out to every subscriber. It resumes
//! from the last entry it read when Redis comes back, so a restart loses
//! no event that Redis kept.

use std::sync::Arc;
use std::time::Duration;

use redis::Value;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::Conn;
use crate::queue::job::JobId;
use crate::queue::watch::{EventCursor, EventKind, JobEvent};

/// Batches a subscriber may be behind the feed before it reads the
/// history instead.
const FEED_CAPACITY: usize = 1_024;

/// A stream entry: its id and its fields.
pub(super) type Entry = (String, Vec<(String, String)>);

/// A stream entry's id, `<ms>-<seq>`.
fn parse_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// The `XRANGE` start for entries holding events after `after`: its own
/// entry when part of it is left, else the next one.
pub(super) fn range_start(after: EventCursor) -> String {
    if after.index == u32::MAX {
        format!("({}-{}", after.ms, after.seq)
    } else {
        format!("{}-{}", after.ms, after.seq)
    }
}

/// The events of one entry; an entry that does not read (written by
/// something else) gives none, and says so in the log.
fn decode_entry(id: &str, fields: &[(String, String)]) -> Vec<JobEvent> {
    let Some((ms, seq)) = parse_id(id) else {
        return Vec::new();
    };
    let Some((_, json)) = fields.iter().find(|(k, _)| k == "e") else {
        return Vec::new();
    };
    let Ok(serde_json::Value::Array(list)) = serde_json::from_str::<serde_json::Value>(json) else {
        tracing::warn!(entry = id, "an event entry does not read; skipped");
        return Vec::new();
    };
    list.iter()
        .enumerate()
        .filter_map(|(index, event)| {
            let event = decode_event(event)?;
            Some(JobEvent {
                cursor: EventCursor {
                    ms,
                    seq,
                    index: index as u32,
                },
                id: event.0,
                name: event.1,
                kind: event.2,
            })
        })
        .collect()
}

fn decode_event(value: &serde_json::Value) -> Option<(JobId, String, EventKind)> {
    let parts = value.as_array()?;
    let text = |i: usize| -> Option<String> {
        match parts.get(i)? {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    };
    let number = |i: usize| -> u64 {
        match parts.get(i) {
            Some(serde_json::Value::Number(n)) => n.as_f64().map_or(0, |f| f.max(0.0) as u64),
            Some(serde_json::Value::String(s)) => s.parse().unwrap_or(0),
            _ => 0,
        }
    };
    let kind = match text(0)?.as_str() {
        "a" => EventKind::Added,
        "s" => EventKind::Active {
            attempt: number(3) as u32,
        },
        "p" => EventKind::Progress {
            progress: text(3).unwrap_or_default(),
        },
        "c" => EventKind::Completed {
            attempt: number(3) as u32,
            duration: Duration::from_millis(number(4)),
        },
        "f" => EventKind::Failed {
            attempt: number(3) as u32,
            error: text(4).unwrap_or_default(),
            will_retry: number(5) == 1,
        },
        "d" => EventKind::Deferred {
            delay: Duration::from_millis(number(3)),
            reason: text(4).unwrap_or_default(),
        },
        "r" => EventKind::Retried,
        "x" => EventKind::Stalled {
            will_retry: number(3) == 1,
        },
        "m" => EventKind::Removed,
        "k" => EventKind::Cancelled,
        _ => return None,
    };
    Some((JobId::from(text(1)?), text(2).unwrap_or_default(), kind))
}

/// The events of an `XRANGE` or `XREAD` reply's entries.
pub(super) fn decode_entries(entries: &[Entry]) -> Vec<JobEvent> {
    entries
        .iter()
        .flat_map(|(id, fields)| decode_entry(id, fields))
        .collect()
}

/// The id of the newest entry of a `XREVRANGE … COUNT 1` reply, or `0-0`.
pub(super) fn newest_id(entries: &[Entry]) -> String {
    entries
        .first()
        .map_or_else(|| "0-0".to_owned(), |(id, _)| id.clone())
}

/// One queue's live feed: the sender subscribers subscribe to.
pub(super) struct Feed {
    pub(super) sender: broadcast::Sender<Arc<[JobEvent]>>,
}

impl Feed {
    /// Starts the task that reads `key` after `last` and publishes each
    /// batch, until no one subscribes (`gone` says so, under the lock the
    /// subscribers take) or the backend stops.
    pub(super) fn start(
        mut blocking: Conn,
        key: String,
        last: String,
        block: Duration,
        stop: CancellationToken,
        gone: impl Fn(&broadcast::Sender<Arc<[JobEvent]>>) -> bool + Send + 'static,
    ) -> Feed {
        let sender = broadcast::channel(FEED_CAPACITY).0;
        let feed = sender.clone();
        tokio::spawn(async move {
            let mut last = last;
            loop {
                if gone(&feed) {
                    return;
                }
                let mut read = redis::cmd("XREAD");
                read.arg("COUNT")
                    .arg(100)
                    .arg("BLOCK")
                    .arg(block.as_millis() as u64)
                    .arg("STREAMS")
                    .arg(&key)
                    .arg(&last);
                let reply = tokio::select! {
                    () = stop.cancelled() => return,
                    reply = read.query_async::<Value>(&mut blocking) => reply,
                };
                match reply {
                    Ok(Value::Nil) => {}
                    Ok(value) => {
                        let entries = stream_entries(value);
                        if let Some((id, _)) = entries.last() {
                            last = id.clone();
                        }
                        let events = decode_entries(&entries);
                        if !events.is_empty() {
                            // No subscriber left is no error: `gone` ends
                            // the task next round.
                            let _ = feed.send(events.into());
                        }
                    }
                    Err(error) => {
                        tracing::debug!(%error, "reading job events failed; retrying");
                        tokio::select! {
                            () = stop.cancelled() => return,
                            () = tokio::time::sleep(Duration::from_millis(200)) => {}
                        }
                    }
                }
            }
        });
        Feed { sender }
    }
}

/// The entries of one stream in an `XREAD` reply (RESP2 arrays or RESP3
/// maps).
fn stream_entries(value: Value) -> Vec<Entry> {
    let streams: Vec<(String, Vec<Entry>)> = match redis::from_redis_value(value.clone()) {
        Ok(streams) => streams,
        Err(_) => {
            match redis::from_redis_value::<std::collections::HashMap<String, Vec<Entry>>>(value) {
                Ok(map) => map.into_iter().collect(),
                Err(error) => {
                    tracing::warn!(%error, "an XREAD reply does not read");
                    Vec::new()
                }
            }
        }
    };
    streams
        .into_iter()
        .flat_map(|(_, entries)| entries)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_decode_with_their_cursors() {
        let json = r#"[["a","7","mail"],["c","7","mail",2,15],["f","8","mail",1,"boom",1],["x","9","mail",0],["d","10","mail",500,"snoozed"]]"#;
        let events = decode_entry("1700000000000-3", &[("e".into(), json.into())]);
        assert_eq!(events.len(), 5);
        assert_eq!(
            events[1],
            JobEvent {
                cursor: EventCursor {
                    ms: 1_700_000_000_000,
                    seq: 3,
                    index: 1
                },
                id: JobId::from("7"),
                name: "mail".into(),
                kind: EventKind::Completed {
                    attempt: 2,
                    duration: Duration::from_millis(15)
                },
            }
        );
        assert_eq!(
            events[2].kind,
            EventKind::Failed {
                attempt: 1,
                error: "boom".into(),
                will_retry: true
            }
        );
        assert_eq!(events[3].kind, EventKind::Stalled { will_retry: false });
        assert!(events[3].is_final());
        assert!(!events[2].is_final());
        // Something else's entry reads as nothing, not as an error.
        assert!(decode_entry("1-0", &[("e".into(), "not json".into())]).is_empty());
    }

    #[test]
    fn ranges_start_after_the_cursor() {
        let whole = EventCursor {
            ms: 5,
            seq: 2,
            index: u32::MAX,
        };
        assert_eq!(range_start(whole), "(5-2");
        let part = EventCursor {
            ms: 5,
            seq: 2,
            index: 0,
        };
        assert_eq!(range_start(part), "5-2");
    }

    #[test]
    fn the_scripts_keep_as_many_entries_as_the_docs_say() {
        assert!(include_str!("lua/prelude.lua").contains(&format!(
            "local EVENTS_KEPT = {}\n",
            crate::queue::watch::EVENTS_KEPT
        )));
    }
}
