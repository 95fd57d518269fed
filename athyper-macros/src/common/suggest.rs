use std::fmt::Write as _;

/// Suggestions further than this from what was written are more likely to
/// confuse than to help.
const MAX_DISTANCE: usize = 2;

/// The message for a word that is not one of `expected`: names what was
/// written, lists every valid word, and suggests the closest one when it is
/// within a typo's reach.
///
/// `unknown("retry strategy", "expo", ..)` gives
/// ``unknown retry strategy `expo`; expected one of `none`, `fixed`, ...``.
pub(crate) fn one_of(what: &str, found: &str, expected: &[&str]) -> String {
    let mut message = format!("unknown {what} `{found}`; expected one of ");
    for (i, word) in expected.iter().enumerate() {
        if i > 0 {
            message.push_str(", ");
        }
        let _ = write!(message, "`{word}`");
    }
    if let Some(close) = did_you_mean(found, expected) {
        let _ = write!(message, "; did you mean `{close}`?");
    }
    message
}

/// The word of `candidates` closest to `found`, if any is at most two edits
/// away. Case is ignored, so `High` finds `high`.
pub(crate) fn did_you_mean<'a>(found: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let found = found.to_lowercase();
    candidates
        .iter()
        .map(|&candidate| (distance(&found, candidate), candidate))
        // `min_by_key` keeps the first of equals, so ties go to the earlier,
        // more common, option.
        .min_by_key(|&(distance, _)| distance)
        .filter(|&(distance, _)| distance <= MAX_DISTANCE)
        .map(|(_, candidate)| candidate)
}

/// Optimal string alignment distance: Levenshtein plus transposition of
/// neighbours, the most common typo (`attemtps`).
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_counts_typos() {
        assert_eq!(distance("priority", "priority"), 0);
        assert_eq!(distance("prority", "priority"), 1);
        assert_eq!(distance("attemtps", "attempts"), 1);
        assert_eq!(distance("", "low"), 3);
        assert_eq!(distance("expo", "exponential"), 7);
    }

    #[test]
    fn suggests_only_close_words() {
        let words = ["critical", "high", "normal", "low"];
        assert_eq!(did_you_mean("hgh", &words), Some("high"));
        assert_eq!(did_you_mean("High", &words), Some("high"));
        assert_eq!(did_you_mean("urgent", &words), None);
    }

    #[test]
    fn lists_every_valid_word() {
        assert_eq!(
            one_of(
                "retry strategy",
                "expo",
                &["none", "fixed", "linear", "exponential"]
            ),
            "unknown retry strategy `expo`; expected one of `none`, `fixed`, `linear`, `exponential`"
        );
        assert_eq!(
            one_of("jitter", "ful", &["none", "full", "equal"]),
            "unknown jitter `ful`; expected one of `none`, `full`, `equal`; did you mean `full`?"
        );
    }
}
