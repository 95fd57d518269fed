//! What queue names, job names and job ids may contain.
//!
//! Names become part of backend keys (`athyper:{<queue>}:…` in Redis, where
//! the braces are the cluster hash tag), so they are restricted to characters
//! that cannot break that scheme. The `#[job]` macro applies the same rule at
//! compile time.

use crate::queue::QueueError;

/// The longest queue or job name.
pub const MAX_NAME_LEN: usize = 128;
/// The longest caller-given job id.
pub const MAX_ID_LEN: usize = 256;

fn name_reason(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("it is empty")
    } else if name.len() > MAX_NAME_LEN {
        Some("it is longer than 128 bytes")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
    {
        Some("use only ASCII letters, digits, `_`, `-`, `.` and `:`")
    } else {
        None
    }
}

/// This machine's name, for worker ids: `HOSTNAME`, else `/etc/hostname`,
/// else `host`.
pub(crate) fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_owned())
}

/// Checks a queue name.
pub fn validate_queue_name(name: &str) -> Result<(), QueueError> {
    match name_reason(name) {
        None => Ok(()),
        Some(reason) => Err(QueueError::InvalidName {
            kind: "queue",
            name: name.to_owned(),
            reason,
        }),
    }
}

/// Checks a job (handler) name.
pub fn validate_job_name(name: &str) -> Result<(), QueueError> {
    match name_reason(name) {
        None => Ok(()),
        Some(reason) => Err(QueueError::InvalidName {
            kind: "job",
            name: name.to_owned(),
            reason,
        }),
    }
}

/// Checks a caller-given job id.
pub fn validate_job_id(id: &str) -> Result<(), QueueError> {
    let reason = if id.is_empty() {
        Some("it is empty")
    } else if id.len() > MAX_ID_LEN {
        Some("it is longer than 256 bytes")
    } else if id.bytes().all(|b| b.is_ascii_digit()) {
        Some("plain numbers are reserved for generated ids; add a prefix such as `order-42`")
    } else if id.chars().any(char::is_control) {
        Some("it contains a control character")
    } else {
        None
    };
    match reason {
        None => Ok(()),
        Some(reason) => Err(QueueError::InvalidJobId {
            id: id.to_owned(),
            reason,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_accept_the_key_safe_alphabet() {
        for ok in ["emails", "emails:high", "a.b-c_d", "Q1"] {
            validate_queue_name(ok).unwrap();
        }
        for bad in ["", "has space", "{tag}", "slash/name", "é"] {
            let err = validate_queue_name(bad).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("invalid queue name `{bad}`")),
                "{err}"
            );
        }
        assert!(validate_job_name(&"x".repeat(129)).is_err());
    }

    #[test]
    fn ids_must_not_look_generated() {
        validate_job_id("order-42").unwrap();
        let err = validate_job_id("42").unwrap_err().to_string();
        assert!(err.contains("reserved for generated ids"), "{err}");
        assert!(validate_job_id("a\nb").is_err());
        assert!(validate_job_id("").is_err());
    }
}
