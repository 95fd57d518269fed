use super::runtime::MAX_NAME_LEN;

/// What a checked name names, for the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NameKind {
    Queue,
    Job,
    Adapter,
}

/// Checks a queue, job or adapter name by the runtime's rule (`athyper::queue::names`),
/// so that a name the runtime would reject at start-up fails the build
/// instead. The message reads like the runtime's `QueueError::InvalidName`.
pub(crate) fn validate_name(kind: NameKind, name: &str) -> Result<(), String> {
    let reason = if name.is_empty() {
        "it is empty".to_owned()
    } else if name.len() > MAX_NAME_LEN {
        format!("it is longer than {MAX_NAME_LEN} bytes")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
    {
        "use only ASCII letters, digits, `_`, `-`, `.` and `:`".to_owned()
    } else {
        return Ok(());
    };
    Err(format!(
        "invalid {} name `{name}`: {reason}",
        kind_name(kind)
    ))
}

fn kind_name(kind: NameKind) -> &'static str {
    match kind {
        NameKind::Queue => "queue",
        NameKind::Job => "job",
        NameKind::Adapter => "adapter",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_runtime_rule() {
        for ok in ["emails", "emails:high", "a.b-c_d", "Q1", &"x".repeat(128)] {
            assert_eq!(validate_name(NameKind::Queue, ok), Ok(()));
        }
        assert_eq!(
            validate_name(NameKind::Queue, "my queue").unwrap_err(),
            "invalid queue name `my queue`: use only ASCII letters, digits, `_`, `-`, `.` and `:`"
        );
        assert_eq!(
            validate_name(NameKind::Job, "").unwrap_err(),
            "invalid job name ``: it is empty"
        );
        assert!(validate_name(NameKind::Job, &"x".repeat(129)).is_err());
        assert!(validate_name(NameKind::Job, "é").is_err());
        assert!(validate_name(NameKind::Job, "{tag}").is_err());
    }
}
