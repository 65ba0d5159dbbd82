//! The definitions behind the log's statistics, written once for every adapter (the contract
//! suite `crate::contract::log` pins them): a turn's duration and overhead, and the nearest-rank
//! percentile.

use super::turn::TurnRecord;

/// Received → finished in milliseconds, and the part of it that was not the bot's; both clamped at
/// zero (clocks of different machines may disagree by a little).
pub fn durations(r: &TurnRecord) -> (u64, u64) {
    let t = &r.timings;
    let total = u64::try_from((t.finished_at - t.received_at).num_milliseconds()).unwrap_or(0);
    (total, total.saturating_sub(t.bot_ms.unwrap_or(0)))
}

/// The 1-based rank of the nearest-rank percentile `p` among `n` values: `ceil(p·n/100)`, at least
/// 1 (SQL adapters use it as an `OFFSET`, minus one).
pub fn nearest_rank_position(n: usize, p: usize) -> usize {
    (p * n).div_ceil(100).max(1)
}

/// The nearest-rank percentile of ascending `sorted` values: the smallest value with at least `p`%
/// of the values at or below it (no interpolation, so the answer is always a real turn's); `None`
/// for no values.
pub fn nearest_rank(sorted: &[u64], p: usize) -> Option<u64> {
    sorted.get(nearest_rank_position(sorted.len(), p) - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::nearest_rank;

    #[test]
    fn nearest_rank_picks_real_values() {
        assert_eq!(nearest_rank(&[], 50), None);
        assert_eq!(nearest_rank(&[7], 95), Some(7));
        let v: Vec<u64> = (1..=20).collect();
        assert_eq!(nearest_rank(&v, 50), Some(10));
        assert_eq!(nearest_rank(&v, 95), Some(19));
        assert_eq!(nearest_rank(&[1, 2, 3], 50), Some(2));
        assert_eq!(nearest_rank(&[1, 2, 3, 4], 50), Some(2));
    }
}
