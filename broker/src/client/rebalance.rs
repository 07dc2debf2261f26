//! Queue allocation among a group's consumers: pure functions.

/// RocketMQ's `AllocateMessageQueueAveragely`: queues and consumers sorted;
/// each consumer gets a contiguous block, the first ones one more when the
/// division is uneven. A consumer not in the list gets nothing.
pub fn allocate_averagely<Q: Clone>(queues: &[Q], consumers: &[String], me: &str) -> Vec<Q> {
    let Some(index) = consumers.iter().position(|c| c == me) else { return Vec::new() };
    let (n, m) = (queues.len(), consumers.len());
    if n == 0 {
        return Vec::new();
    }
    let rem = n % m;
    let size = if n <= m { 1 } else if index < rem { n / m + 1 } else { n / m };
    let start = if rem > 0 && index < rem { index * size } else { index * size + rem };
    let start = if n <= m { index } else { start };
    (start..(start + size).min(n)).map(|i| queues[i].clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("c{i}")).collect()
    }

    #[test]
    fn uneven_split_gives_first_consumers_more() {
        let queues: Vec<u32> = (0..8).collect();
        let c = ids(3);
        assert_eq!(allocate_averagely(&queues, &c, "c0"), vec![0, 1, 2]);
        assert_eq!(allocate_averagely(&queues, &c, "c1"), vec![3, 4, 5]);
        assert_eq!(allocate_averagely(&queues, &c, "c2"), vec![6, 7]);
        assert!(allocate_averagely(&queues, &c, "stranger").is_empty());
        assert_eq!(allocate_averagely(&[0u32, 1], &ids(3), "c2"), Vec::<u32>::new());
    }

    proptest! {
        /// Every queue goes to exactly one consumer.
        #[test]
        fn partition(n in 0usize..40, m in 1usize..10) {
            let queues: Vec<usize> = (0..n).collect();
            let consumers = ids(m);
            let mut all: Vec<usize> = consumers.iter().flat_map(|c| allocate_averagely(&queues, &consumers, c)).collect();
            all.sort();
            prop_assert_eq!(all, queues);
        }
    }
}
