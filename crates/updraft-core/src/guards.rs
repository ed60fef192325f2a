//! Shared by the management API and the CLI: the "did you mean" helper that
//! suggests existing names for a mistyped one. (The guards' error codes,
//! `bundle_in_use`, `encryption_downgrade` and `channel_not_found`, are
//! `updraft_api::ErrorCode` variants.)

/// Edit distance (insertions, deletions, substitutions) between two names,
/// by character, case-insensitive.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

/// The candidates close enough to `name` to be what was meant, closest first
/// (at most three): within a third of the longer name's length (at least 2
/// edits), or sharing a prefix of three characters or more. Ties keep the
/// candidates' order.
pub fn closest_names<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let wanted = name.to_lowercase();
    let mut scored: Vec<(usize, &str)> = candidates
        .into_iter()
        .filter_map(|candidate| {
            let distance = edit_distance(name, candidate);
            let longest = name.chars().count().max(candidate.chars().count());
            let limit = (longest / 3).max(2);
            let lower = candidate.to_lowercase();
            let prefix = lower
                .chars()
                .zip(wanted.chars())
                .take_while(|(a, b)| a == b)
                .count();
            (distance <= limit || prefix >= 3).then_some((distance, candidate))
        })
        .collect();
    scored.sort_by_key(|(distance, _)| *distance);
    scored
        .into_iter()
        .take(3)
        .map(|(_, candidate)| candidate.to_string())
        .collect()
}

/// ` (did you mean a or b?)` for an error message, or nothing.
pub fn did_you_mean(suggestions: &[String]) -> String {
    match suggestions {
        [] => String::new(),
        [one] => format!(" (did you mean {one}?)"),
        [rest @ .., last] => format!(" (did you mean {} or {last}?)", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_counts_edits() {
        assert_eq!(edit_distance("production", "production"), 0);
        assert_eq!(edit_distance("prodution", "production"), 1);
        assert_eq!(edit_distance("Beta", "beta"), 0);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn typos_suggest_the_nearest_names_only() {
        let channels = ["production", "beta", "staging"];
        assert_eq!(closest_names("prodution", channels), vec!["production"]);
        assert_eq!(closest_names("bta", channels), vec!["beta"]);
        assert_eq!(closest_names("stag", channels), vec!["staging"]);
        assert!(closest_names("nightly", channels).is_empty());
        assert_eq!(did_you_mean(&[]), "");
        assert_eq!(
            did_you_mean(&["a".into(), "b".into(), "c".into()]),
            " (did you mean a, b or c?)"
        );
    }
}
