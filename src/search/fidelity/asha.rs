//! ASHA's promotion rule, and the order in which results count.
//!
//! A function at rung k is promoted to rung k + 1 once it is among the top floor(n_k / eta)
//! of the n_k results seen at rung k, and never before; a promotion is never taken back. Only
//! a child that trained (status ok) can be promoted: a failed or diverged one ranks last.
//! Ranks are by reward, then by the lower child id, so ties are decided the same way
//! everywhere.
//!
//! Results are *seen* in a fixed order, whatever order they come back in: at rung 0 in
//! proposal order, at a higher rung in the order of the promotions that sent children there.
//! A result counts once every earlier result of its rung has come back ([`Sequencer`]), while
//! any number of children run ahead. Each rung's decisions then depend only on the results,
//! never on how many workers ran them or when they finished, and a resumed search takes the
//! same decisions again.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::Rungs;

/// A result at a rung: the child, its reward there, and whether it trained (status ok).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Seen {
    pub child: usize,
    pub reward: f64,
    pub ok: bool,
}

/// The promotion state of a search: every result seen at each rung, in order, and the
/// children promoted from each. It is the controller's, saved with each iteration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Asha {
    eta: usize,
    /// Per rung, the results seen, in the order they counted.
    seen: Vec<Vec<Seen>>,
    /// Per rung below the top, the children promoted from it, in order.
    promoted: Vec<Vec<usize>>,
}

impl Asha {
    /// No result seen yet, at `rungs` rungs, promoting the top 1/`eta` of each.
    pub fn new(eta: usize, rungs: usize) -> Asha {
        Asha { eta, seen: vec![Vec::new(); rungs], promoted: vec![Vec::new(); rungs.saturating_sub(1)] }
    }

    /// Sees one more result at `rung` (the next in its order): returns the child it promotes
    /// to `rung + 1`, if any (at most one, see [`Asha::worst_cost`]; none at the top rung).
    pub fn see(&mut self, rung: usize, result: Seen) -> Option<usize> {
        self.seen[rung].push(result);
        if rung + 1 >= self.seen.len() {
            return None;
        }
        let mut ranked: Vec<Seen> = self.seen[rung].iter().copied().filter(|s| s.ok).collect();
        ranked.sort_by(|a, b| b.reward.total_cmp(&a.reward).then(a.child.cmp(&b.child)));
        let top = self.seen[rung].len() / self.eta;
        let promoted = ranked.into_iter().take(top).find(|s| !self.promoted[rung].contains(&s.child))?;
        self.promoted[rung].push(promoted.child);
        Some(promoted.child)
    }

    /// The results seen at `rung`, in order.
    pub fn seen(&self, rung: usize) -> &[Seen] {
        &self.seen[rung]
    }

    /// The children promoted from `rung`, in order.
    pub fn promoted(&self, rung: usize) -> &[usize] {
        self.promoted.get(rung).map_or(&[], |p| p.as_slice())
    }

    /// The most child steps that `new` more results at rung 0 can lead to, promotions to
    /// every rung included. A promotion is never taken back, so a rung can promote more than
    /// floor(n / eta) children in all (a better one displaces the top); but one result
    /// promotes at most one child (the top grows by at most one, and the result either joins
    /// it or lets the next in), and the first eta - 1 results promote none.
    pub fn worst_cost(&self, new: usize, rungs: &Rungs) -> usize {
        let mut cost = new * rungs.cost(0);
        let mut arriving = new;
        for rung in 0..rungs.top() {
            let can = (self.seen[rung].len() + arriving).saturating_sub(self.eta - 1);
            let more = arriving.min(can.saturating_sub(self.promoted[rung].len()));
            cost += more * rungs.cost(rung + 1);
            arriving = more;
        }
        cost
    }
}

/// The order in which results count: each rung's expected children, in order, and the
/// results that came back before their turn.
#[derive(Debug, Default)]
pub struct Sequencer {
    expected: Vec<VecDeque<usize>>,
    arrived: Vec<HashMap<usize, Seen>>,
}

impl Sequencer {
    pub fn new(rungs: usize) -> Sequencer {
        Sequencer { expected: vec![VecDeque::new(); rungs], arrived: vec![HashMap::new(); rungs] }
    }

    /// Child `child` will report at `rung`, after every child expected there before it.
    pub fn expect(&mut self, rung: usize, child: usize) {
        self.expected[rung].push_back(child);
    }

    /// A result came back at `rung`: returns the results that count now, in their order (none
    /// while an earlier child of the rung is still out).
    pub fn arrive(&mut self, rung: usize, result: Seen) -> Vec<Seen> {
        self.arrived[rung].insert(result.child, result);
        let mut ready = Vec::new();
        while let Some(next) = self.expected[rung].front().and_then(|c| self.arrived[rung].remove(c)) {
            self.expected[rung].pop_front();
            ready.push(next);
        }
        ready
    }

    /// True while some expected result has not counted yet.
    pub fn waiting(&self) -> bool {
        self.expected.iter().any(|q| !q.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(child: usize, reward: f64) -> Seen {
        Seen { child, reward, ok: true }
    }

    /// Hand-made results at rung 0 of two rungs, eta 3: the top third of what was seen so far
    /// goes up, each child once, the best first; a failed child never does.
    #[test]
    fn promotion_follows_the_top_third_of_what_was_seen() {
        let mut a = Asha::new(3, 2);
        assert_eq!(a.see(0, ok(0, 0.5)), None);
        assert_eq!(a.see(0, ok(1, 0.7)), None);
        // 3 seen: the best one (child 1) goes up.
        assert_eq!(a.see(0, ok(2, 0.6)), Some(1));
        // 4 seen, still a top 1, now child 3: promoted too; child 1 stays promoted.
        assert_eq!(a.see(0, ok(3, 0.9)), Some(3));
        assert_eq!(a.see(0, ok(4, 0.1)), None);
        // 6 seen: top 2 = children 3 and 1, both up already.
        assert_eq!(a.see(0, ok(5, 0.65)), None);
        // A failed child with the highest number is no candidate; 9 seen: top 3 adds child 5.
        assert_eq!(a.see(0, Seen { child: 6, reward: 1.0, ok: false }), None);
        assert_eq!(a.see(0, ok(7, 0.0)), None);
        assert_eq!(a.see(0, ok(8, 0.2)), Some(5));
        assert_eq!(a.promoted(0), &[1, 3, 5]);
        // The top rung promotes nothing.
        assert_eq!(a.see(1, ok(1, 0.9)), None);
        assert_eq!(a.promoted(1), &[] as &[usize]);
    }

    /// Equal rewards rank the lower child first, and a failed child is no candidate.
    #[test]
    fn ties_go_to_the_earlier_child() {
        let mut a = Asha::new(2, 3);
        assert_eq!(a.see(0, Seen { child: 4, reward: 0.3, ok: false }), None);
        // 2 seen, top 1 = child 5 (child 4 failed).
        assert_eq!(a.see(0, ok(5, 0.3)), Some(5));
        let mut b = Asha::new(2, 3);
        b.see(0, ok(9, 0.5));
        assert_eq!(b.see(0, ok(8, 0.5)), Some(8));
    }

    /// Whatever order results come back in, they count in the expected order, so the
    /// decisions are the same.
    #[test]
    fn results_count_in_order_whatever_order_they_arrive_in() {
        let rewards = [0.3, 0.9, 0.1, 0.5, 0.7, 0.2, 0.8, 0.4, 0.6];
        let decide = |arrival: &[usize]| {
            let mut s = Sequencer::new(2);
            let mut a = Asha::new(3, 2);
            for c in 0..rewards.len() {
                s.expect(0, c);
            }
            let mut decisions = Vec::new();
            for &c in arrival {
                for seen in s.arrive(0, ok(c, rewards[c])) {
                    decisions.push((seen.child, a.see(0, seen)));
                }
            }
            assert!(!s.waiting());
            decisions
        };
        let in_order: Vec<usize> = (0..9).collect();
        let want = decide(&in_order);
        assert_eq!(want.iter().filter_map(|(_, p)| *p).collect::<Vec<_>>(), vec![1, 4, 6]);
        for arrival in [[8, 7, 6, 5, 4, 3, 2, 1, 0], [1, 0, 3, 2, 5, 4, 7, 6, 8], [4, 2, 0, 1, 3, 8, 5, 6, 7]] {
            assert_eq!(decide(&arrival), want);
        }
    }

    /// The worst case bounds what any results can cost.
    #[test]
    fn the_worst_cost_bounds_every_outcome() {
        let rungs = Rungs::new(10, 3, 90).unwrap();
        let a = Asha::new(3, rungs.count());
        // 9 new: 9 * 10 steps, at most 7 promotions of 20 steps, then 5 of 60.
        let worst = a.worst_cost(9, &rungs);
        assert_eq!(worst, 90 + 140 + 300);
        let mut most = 0;
        for seed in 0..50u64 {
            let mut a = a.clone();
            let mut x = seed;
            let mut reward = || {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (x >> 33) as f64 / (1u64 << 31) as f64
            };
            let mut cost = 0;
            let mut queue: VecDeque<(usize, usize)> = (0..9).map(|c| (0, c)).collect();
            while let Some((rung, child)) = queue.pop_front() {
                cost += rungs.cost(rung);
                if let Some(p) = a.see(rung, ok(child, reward())) {
                    queue.push_back((rung + 1, p));
                }
            }
            assert!(cost <= worst, "{cost}");
            most = most.max(cost);
        }
        // More than floor(n / eta) per rung happens: 3 + 1 promotions would cost 210.
        assert!(most > 210, "{most}");
    }
}
