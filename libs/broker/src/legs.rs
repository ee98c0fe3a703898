//! Venue-neutral helpers for the exit orders an adapter composes itself when a venue carries
//! fewer protective orders than a bracket asks for (ProjectX: one native target; Webull: none):
//! the legs' sizes for the quantity that actually filled, and the client order ids (tags) that
//! mark a position's take-profit legs and stops.

/// Leg quantities for a fill of `filled` contracts: each leg its requested quantity at most,
/// in order, until the fill is used up.
#[must_use]
pub fn leg_sizes(requested: &[u32], filled: u32) -> Vec<u32> {
    let mut left = filled;
    requested
        .iter()
        .map(|q| {
            let take = (*q).min(left);
            left -= take;
            take
        })
        .collect()
}

/// The tag of take-profit leg `n` (1-based) of a bracket.
#[must_use]
pub fn leg_tag(client_order_id: &str, n: usize) -> String {
    format!("{client_order_id}-tp{n}")
}

/// The tag of a bracket's stop placed by the adapter.
#[must_use]
pub fn stop_tag(client_order_id: &str) -> String {
    format!("{client_order_id}-sl")
}

/// Whether a client order id marks an exit order the adapter or the executor placed for a
/// position (take-profit legs and stops: `…-tp`, `…-tpN`, `…-sl`).
#[must_use]
pub fn is_exit_tag(tag: &str) -> bool {
    if tag.ends_with("-sl") || tag.ends_with("-tp") {
        return true;
    }
    tag.rsplit_once("-tp")
        .is_some_and(|(_, n)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legs_take_the_fill_in_order_and_tags_mark_exits() {
        assert_eq!(leg_sizes(&[1, 1], 2), vec![1, 1]);
        assert_eq!(leg_sizes(&[2, 1], 1), vec![1, 0]);
        assert_eq!(leg_sizes(&[1, 1], 0), vec![0, 0]);
        assert!(is_exit_tag(&leg_tag("jt1", 2)));
        assert!(is_exit_tag(&stop_tag("jt1")));
        assert!(is_exit_tag("jt1-tp"));
        assert!(!is_exit_tag("jt1"));
        assert!(!is_exit_tag("jt1-tpx"));
    }
}
