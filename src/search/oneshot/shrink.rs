//! GRAFS' progressive shrinking: from the second epoch on, the search space loses its
//! weakest ops on a log-spaced schedule until one op per position is left in the last epoch.
//! Each drop takes the position with the most ops left (the first one on ties) and removes
//! the op with the smallest mixing weight there.

/// Ops in play (summed over positions) during 0-based `epoch` of `epochs`, for a cell with
/// `total` ops in `positions` positions. The first epoch keeps every op; from the second the
/// count falls geometrically to exactly `positions` in the last epoch.
pub fn ops_in_play(total: usize, positions: usize, epoch: usize, epochs: usize) -> usize {
    if epoch == 0 || epochs < 2 {
        return total;
    }
    let t = epoch.min(epochs - 1) as f64 / (epochs - 1) as f64;
    let (lo, hi) = ((positions as f64).ln(), (total as f64).ln());
    let r = (hi + (lo - hi) * t).exp().round() as usize;
    r.clamp(positions, total)
}

/// Drop ops from `active[position][op]` until `target` remain, by `weights[position][op]`.
/// Returns the dropped `(position, op)` pairs in order.
pub fn shrink(active: &mut [Vec<bool>], weights: &[Vec<f64>], target: usize) -> Vec<(usize, usize)> {
    let mut dropped = Vec::new();
    loop {
        let counts: Vec<usize> = active.iter().map(|a| a.iter().filter(|&&x| x).count()).collect();
        if counts.iter().sum::<usize>() <= target {
            return dropped;
        }
        let most = *counts.iter().max().expect("a cell has positions");
        if most <= 1 {
            return dropped;
        }
        let p = counts.iter().position(|&c| c == most).expect("the maximum is present");
        let k = (0..active[p].len())
            .filter(|&k| active[p][k])
            .min_by(|&a, &b| weights[p][a].total_cmp(&weights[p][b]))
            .expect("the position has ops in play");
        active[p][k] = false;
        dropped.push((p, k));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// For every run length, the schedule never grows, starts with all ops and ends with one
    /// op per position in the last epoch; applying it leaves exactly that.
    #[test]
    fn shrinking_reaches_one_op_per_position_at_the_last_epoch() {
        let counts = [23usize, 23, 9, 23, 9]; // the grafs cell
        let total: usize = counts.iter().sum();
        for epochs in [2usize, 3, 5, 10, 50] {
            let mut active: Vec<Vec<bool>> = counts.iter().map(|&n| vec![true; n]).collect();
            let weights: Vec<Vec<f64>> = counts
                .iter()
                .enumerate()
                .map(|(p, &n)| (0..n).map(|k| ((p * 31 + k * 17) % 13) as f64).collect())
                .collect();
            let mut previous = total;
            for epoch in 0..epochs {
                let target = ops_in_play(total, counts.len(), epoch, epochs);
                assert!(target <= previous, "epochs {epochs}: grew at {epoch}");
                previous = target;
                shrink(&mut active, &weights, target);
                let left: usize = active.iter().map(|a| a.iter().filter(|&&x| x).count()).sum();
                assert_eq!(left, target, "epochs {epochs}, epoch {epoch}");
                if epoch == 0 {
                    assert_eq!(left, total);
                }
            }
            for (p, a) in active.iter().enumerate() {
                let left: Vec<usize> = (0..a.len()).filter(|&k| a[k]).collect();
                assert_eq!(left.len(), 1, "epochs {epochs}: position {p} keeps {left:?}");
                // The survivor is the position's strongest op.
                let best = (0..a.len()).max_by(|&x, &y| weights[p][x].total_cmp(&weights[p][y])).unwrap();
                assert_eq!(weights[p][left[0]], weights[p][best]);
            }
        }
    }

    #[test]
    fn each_drop_takes_the_weakest_op_of_the_fullest_position() {
        let mut active = vec![vec![true; 3], vec![true; 4]];
        let weights = vec![vec![0.5, 0.2, 0.3], vec![0.4, 0.1, 0.3, 0.2]];
        assert_eq!(shrink(&mut active, &weights, 5), vec![(1, 1), (0, 1)]);
    }
}
