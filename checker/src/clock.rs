//! The brokers' clocks as the run moved them, for the checks that forgive
//! a timer, delayed message or retry for arriving early by exactly as much
//! as its broker's clock ran ahead while it held the message, and no more.

use crate::config::CheckConfig;

/// Each broker process's clock offset over time, from
/// [`crate::Expect::clock_moves_ms`].
pub(crate) struct Clocks<'a> {
    cfg: &'a CheckConfig,
}

impl<'a> Clocks<'a> {
    /// The clocks of `cfg`'s scenario.
    pub fn of(cfg: &'a CheckConfig) -> Clocks<'a> {
        Clocks { cfg }
    }

    /// The processes behind a broker name as queues give it: the process of
    /// that name, or every replica of that group.
    fn processes(&self, broker: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        let groups = &self.cfg.expect.broker_groups;
        self.cfg
            .expect
            .clock_moves_ms
            .keys()
            .map(String::as_str)
            .filter(move |p| *p == broker || groups.get(*p).is_some_and(|g| g == broker))
    }

    /// How much earlier than due a message held by `broker` from `from_ms`
    /// to `to_ms` may arrive: how far its clock ran ahead while it held the
    /// message. A message due at a time its broker computed from its own
    /// clock (a delay level, a retry; re-based when the clock steps back)
    /// is early by at most the clock's largest gain from any point of that
    /// stretch; one due at an absolute time (a timer) by at most how far
    /// ahead of true time the clock ran; this is the larger. With replicas,
    /// any of them may have held it: the most any gained, or the spread
    /// between them.
    pub fn allowance_ms(&self, broker: &str, from_ms: u64, to_ms: u64) -> u64 {
        let moves = &self.cfg.expect.clock_moves_ms;
        let (mut allowance, mut high, mut low) = (0i64, None::<i64>, None::<i64>);
        for process in self.processes(broker) {
            let steps = &moves[process];
            let offset_at = |t: u64, inclusive: bool| -> i64 {
                steps.iter().filter(|(at, _)| if inclusive { *at <= t } else { *at < t }).map(|(_, d)| d).sum()
            };
            // The clock's offsets while it held the message, in order.
            let mut offsets = vec![offset_at(from_ms, false), offset_at(from_ms, true)];
            offsets.extend(steps.iter().filter(|(at, _)| *at > from_ms && *at <= to_ms).map(|(at, _)| offset_at(*at, true)));
            // The most it gained from any point (a broker may re-base a due
            // time when its clock steps back) and how far ahead it ran.
            let mut least = i64::MAX;
            for &offset in &offsets {
                least = least.min(offset);
                allowance = allowance.max(offset - least).max(offset);
            }
            high = high.max(offsets.iter().copied().max());
            low = Some(low.map_or(least, |l: i64| l.min(least)));
        }
        // With replicas, stored under one clock and delivered under another.
        if let (Some(high), Some(low)) = (high, low) {
            allowance = allowance.max(high - low);
        }
        allowance.max(0) as u64
    }

    /// How far behind and how far ahead of true time (both >= 0) the clock
    /// of `broker` (any of its replicas) stood at some time in
    /// `[from_ms, to_ms]`: a time it stamped then is true time less the
    /// first or plus the second at most.
    pub fn spread_ms(&self, broker: &str, from_ms: u64, to_ms: u64) -> (u64, u64) {
        let moves = &self.cfg.expect.clock_moves_ms;
        let (mut behind, mut ahead) = (0i64, 0i64);
        for process in self.processes(broker) {
            let steps = &moves[process];
            let offset_at = |t: u64| -> i64 { steps.iter().filter(|(at, _)| *at <= t).map(|(_, d)| d).sum() };
            let during = steps.iter().filter(|(at, _)| *at > from_ms && *at <= to_ms).map(|(at, _)| offset_at(*at));
            for offset in std::iter::once(offset_at(from_ms)).chain(during) {
                behind = behind.max(-offset);
                ahead = ahead.max(offset);
            }
        }
        (behind as u64, ahead as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Expect;

    fn cfg(moves: &[(&str, &[(u64, i64)])]) -> CheckConfig {
        CheckConfig {
            expect: Expect {
                clock_moves_ms: moves.iter().map(|(p, m)| (p.to_string(), m.to_vec())).collect(),
                broker_groups: [("broker-2".to_string(), "group-1".to_string()), ("broker-3".to_string(), "group-1".to_string())].into(),
                ..Expect::default()
            },
            ..CheckConfig::default()
        }
    }

    #[test]
    fn a_skew_is_forgiven_only_to_messages_held_while_it_lasted() {
        // broker-0 runs 700 ms ahead from 5 s to 25 s.
        let cfg = cfg(&[("broker-0", &[(5_000, 700), (25_000, -700)])]);
        let clocks = Clocks::of(&cfg);
        assert_eq!(clocks.allowance_ms("broker-0", 1_000, 4_000), 0);
        assert_eq!(clocks.allowance_ms("broker-0", 1_000, 6_000), 700);
        assert_eq!(clocks.allowance_ms("broker-0", 10_000, 12_000), 700);
        assert_eq!(clocks.allowance_ms("broker-0", 26_000, 30_000), 0);
        assert_eq!(clocks.allowance_ms("broker-1", 1_000, 30_000), 0);
    }

    #[test]
    fn a_clock_behind_when_the_message_came_in_forgives_its_catching_up() {
        // broker-1 is 1.5 s behind from 10 s, back at 35 s, then 20 s behind.
        let cfg = cfg(&[("broker-1", &[(10_000, -1_500), (35_000, 1_500), (40_000, -20_000)])]);
        let clocks = Clocks::of(&cfg);
        assert_eq!(clocks.allowance_ms("broker-1", 20_000, 30_000), 0);
        assert_eq!(clocks.allowance_ms("broker-1", 20_000, 36_000), 1_500);
        assert_eq!(clocks.allowance_ms("broker-1", 41_000, 60_000), 0);
    }

    #[test]
    fn the_spread_is_how_far_either_way_a_clock_stood_in_the_window() {
        let cfg = cfg(&[("broker-0", &[(5_000, 700), (25_000, -1_200)]), ("broker-2", &[(1_000, -200)])]);
        let clocks = Clocks::of(&cfg);
        assert_eq!(clocks.spread_ms("broker-0", 1_000, 4_000), (0, 0));
        assert_eq!(clocks.spread_ms("broker-0", 6_000, 8_000), (0, 700));
        assert_eq!(clocks.spread_ms("broker-0", 6_000, 30_000), (500, 700));
        assert_eq!(clocks.spread_ms("group-1", 0, 30_000), (200, 0));
        assert_eq!(clocks.spread_ms("broker-1", 0, 30_000), (0, 0));
    }

    #[test]
    fn a_group_forgives_what_any_replica_gained() {
        let cfg = cfg(&[("broker-2", &[(5_000, 300)]), ("broker-3", &[(1_000, -200)])]);
        let clocks = Clocks::of(&cfg);
        assert_eq!(clocks.allowance_ms("group-1", 2_000, 6_000), 500);
        assert_eq!(clocks.allowance_ms("group-0", 2_000, 6_000), 0);
    }
}
