//! The buckets latency recorders count into: exact below 16 µs, then 16 per power of two, so a
//! percentile read from them (a bucket's midpoint) is within 1/32 (3.1%) of the true value.

/// Values below this have a bucket each.
const LINEAR: u64 = 16;
/// Buckets per power of two above that (2^SUB_BITS).
const SUB_BITS: u32 = 4;
/// Powers of two covered: values up to 2^40 µs (12.7 days); larger ones share the last bucket.
const TOP_POWER: u32 = 40;

/// How many buckets there are.
pub(crate) const BUCKETS: usize = LINEAR as usize + ((TOP_POWER - SUB_BITS) as usize) * 16;

/// The bucket `value` falls in.
#[inline]
pub(crate) fn bucket_of(value: u64) -> usize {
    if value < LINEAR {
        return value as usize;
    }
    let power = 63 - value.leading_zeros(); // >= SUB_BITS
    if power >= TOP_POWER {
        return BUCKETS - 1;
    }
    let sub = (value >> (power - SUB_BITS)) & (LINEAR - 1);
    LINEAR as usize + (power - SUB_BITS) as usize * 16 + sub as usize
}

/// The values bucket `index` holds: `[low, high)`.
pub(crate) fn bounds(index: usize) -> (u64, u64) {
    if index < LINEAR as usize {
        let low = index as u64;
        return (low, low + 1);
    }
    let above = index - LINEAR as usize;
    let shift = (above / 16) as u32;
    let sub = (above % 16) as u64;
    let low = (LINEAR + sub) << shift;
    (low, low + (1u64 << shift))
}

/// The value at quantile `q` (0..=1) of the counts `buckets` hold, `total` in all: the
/// midpoint of the bucket it falls in (the exact value below 16); 0 when empty.
pub(crate) fn quantile(buckets: &[u64], total: u64, q: f64) -> u64 {
    if total == 0 {
        return 0;
    }
    // The rank of the value wanted, 1-based: the smallest value with at least q of all
    // values at or below it.
    let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
    let mut seen = 0;
    for (index, &count) in buckets.iter().enumerate() {
        seen += count;
        if seen >= rank {
            let (low, high) = bounds(index);
            return if high - low == 1 {
                low
            } else {
                low + (high - low) / 2
            };
        }
    }
    bounds(BUCKETS - 1).0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_lands_in_the_bucket_that_bounds_it() {
        let mut values: Vec<u64> = (0..5000).collect();
        values.extend((0..63).map(|p| 1u64 << p));
        values.extend((1..63).map(|p| (1u64 << p) - 1));
        values.extend([u64::MAX, 123_456_789, 1 << 39 | 12345]);
        for value in values {
            let index = bucket_of(value);
            assert!(index < BUCKETS, "{value}");
            let (low, high) = bounds(index);
            if index < BUCKETS - 1 {
                assert!(
                    low <= value && value < high,
                    "{value} in {index}: [{low}, {high})"
                );
            } else {
                assert!(low <= value, "{value}");
            }
        }
    }

    #[test]
    fn buckets_are_contiguous_and_narrow() {
        for index in 1..BUCKETS {
            assert_eq!(bounds(index - 1).1, bounds(index).0, "{index}");
            let (low, high) = bounds(index);
            // A midpoint is within 1/32 of any value in the bucket.
            assert!(
                (high - low) as f64 / 2.0 <= low as f64 / 32.0 + 0.5,
                "{index}"
            );
        }
    }

    #[test]
    fn quantiles_are_within_the_stated_error() {
        // 1..=100_000 µs once each: the exact q-quantile is q × 100_000.
        let mut buckets = vec![0u64; BUCKETS];
        for value in 1..=100_000u64 {
            buckets[bucket_of(value)] += 1;
        }
        for q in [0.5, 0.8, 0.9, 0.99, 0.999, 0.9999, 1.0] {
            let exact = q * 100_000.0;
            let got = quantile(&buckets, 100_000, q) as f64;
            assert!(
                (got - exact).abs() <= exact / 32.0,
                "q={q}: {got} vs {exact}"
            );
        }
        assert_eq!(quantile(&buckets, 0, 0.5), 0);
        let mut small = vec![0u64; BUCKETS];
        small[bucket_of(7)] += 3;
        assert_eq!(quantile(&small, 3, 0.99), 7, "exact below 16");
    }
}
