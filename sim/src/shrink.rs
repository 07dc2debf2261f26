//! Delta debugging (ddmin) of a fault schedule: the smallest schedule found
//! that still fails the same seed.

use scenarios::ScheduledFault;

/// Shrinks `schedule` while `fails` keeps returning true; `fails` is called
/// with candidate schedules. Returns the smallest failing one found and the
/// number of runs it took. The input itself must fail.
pub fn ddmin(schedule: &[ScheduledFault], mut fails: impl FnMut(&[ScheduledFault]) -> bool) -> (Vec<ScheduledFault>, usize) {
    let mut current = schedule.to_vec();
    let mut runs = 0;
    if current.is_empty() {
        return (current, runs);
    }
    runs += 1;
    if fails(&[]) {
        return (Vec::new(), runs);
    }
    let mut n = 2usize;
    while current.len() >= 2 {
        let chunk = current.len().div_ceil(n);
        let mut reduced = false;
        for i in 0..n {
            let (lo, hi) = (i * chunk, ((i + 1) * chunk).min(current.len()));
            if lo >= hi {
                continue;
            }
            let complement: Vec<ScheduledFault> = current[..lo].iter().chain(&current[hi..]).cloned().collect();
            runs += 1;
            if fails(&complement) {
                current = complement;
                n = (n - 1).max(2);
                reduced = true;
                break;
            }
        }
        if !reduced {
            if n >= current.len() {
                break;
            }
            n = (n * 2).min(current.len());
        }
    }
    (current, runs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use scenarios::Fault;

    fn fault(at_ms: u64) -> ScheduledFault {
        ScheduledFault { at_ms, fault: Fault::Kill { target: "broker-0".into() }, heal_at_ms: Some(at_ms + 1) }
    }

    #[test]
    fn finds_the_two_faults_that_matter() {
        let schedule: Vec<ScheduledFault> = (0..10).map(|i| fault(i * 100)).collect();
        let culprit = |s: &[ScheduledFault]| s.iter().any(|f| f.at_ms == 300) && s.iter().any(|f| f.at_ms == 700);
        let (min, runs) = ddmin(&schedule, culprit);
        assert_eq!(min.iter().map(|f| f.at_ms).collect::<Vec<_>>(), vec![300, 700]);
        assert!(runs < 40, "{runs} runs");
    }

    #[test]
    fn a_failure_without_faults_shrinks_to_nothing() {
        let schedule: Vec<ScheduledFault> = (0..3).map(|i| fault(i * 100)).collect();
        assert!(ddmin(&schedule, |_| true).0.is_empty());
    }
}
