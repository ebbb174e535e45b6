//! A k-nearest-neighbour regressor on a standardized distance: each feature is divided by
//! its spread over the points fit, so that no feature counts more for its scale alone, and a
//! prediction is the mean reward of the `k` nearest points (ties go to the earlier point).
//! AQuaSurF used scikit-learn's KNeighborsRegressor on a UMAP embedding; without a well-kept
//! Rust UMAP, this is the standardized distance that issue 25 allows instead.

/// The regressor: its points (features and reward), in the order they were added.
#[derive(Clone, Debug, Default)]
pub struct Knn {
    k: usize,
    /// The sizes of the feature sets, in order (empty: one set): each set weighs the same in
    /// the distance, however many features it has.
    groups: Vec<usize>,
    points: Vec<(Vec<f64>, f64)>,
}

impl Knn {
    /// No points yet; predictions average the `k` nearest (fewer while fewer are fit).
    pub fn new(k: usize) -> Knn {
        Knn { k: k.max(1), groups: Vec::new(), points: Vec::new() }
    }

    /// [`Knn::new`] on features made of sets of `groups` features each, in order, each set
    /// counting equally: a feature's squared standardized difference is divided by its set's
    /// size (1000 output features then weigh as much as a 16-bin spectrum).
    pub fn grouped(k: usize, groups: Vec<usize>) -> Knn {
        Knn { groups, ..Knn::new(k) }
    }

    /// Each feature's weight in the distance: one over the size of its set.
    fn weights(&self, dims: usize) -> Vec<f64> {
        let mut w: Vec<f64> = self.groups.iter().flat_map(|&g| vec![1.0 / g as f64; g]).collect();
        // Features past the sets (or with no sets given) weigh 1.
        w.resize(dims, 1.0);
        w
    }

    /// Adds a point with its reward.
    pub fn add(&mut self, features: Vec<f64>, reward: f64) {
        self.points.push((features, reward));
    }

    pub fn len(&self) -> usize {
        self.points.len()
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// Each feature's standard deviation over the points (1 where it does not vary).
    fn scales(&self) -> Vec<f64> {
        let dims = self.points.first().map_or(0, |p| p.0.len());
        let n = self.points.len() as f64;
        (0..dims)
            .map(|d| {
                let mean = self.points.iter().map(|p| p.0[d]).sum::<f64>() / n;
                let var = self.points.iter().map(|p| (p.0[d] - mean).powi(2)).sum::<f64>() / n;
                if var > 1e-12 { var.sqrt() } else { 1.0 }
            })
            .collect()
    }

    /// The predicted reward of each of `queries`; None while no point is fit.
    pub fn predict(&self, queries: &[Vec<f64>]) -> Option<Vec<f64>> {
        if self.points.is_empty() {
            return None;
        }
        let scales = self.scales();
        let weights = self.weights(scales.len());
        let distance = |a: &[f64], b: &[f64]| -> f64 {
            a.iter().zip(b).zip(scales.iter().zip(&weights)).map(|((x, y), (s, w))| w * ((x - y) / s).powi(2)).sum()
        };
        let k = self.k.min(self.points.len());
        let predictions = queries
            .iter()
            .map(|q| {
                let mut near: Vec<(f64, usize)> =
                    self.points.iter().enumerate().map(|(i, p)| (distance(q, &p.0), i)).collect();
                near.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                near[..k].iter().map(|&(_, i)| self.points[i].1).sum::<f64>() / k as f64
            })
            .collect();
        Some(predictions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On synthetic features, where the reward depends on the first feature and a second one
    /// is noise a thousand times larger, the standardized kNN still predicts from the first.
    #[test]
    fn the_nearest_points_predict_and_scale_does_not_dominate() {
        let mut knn = Knn::new(3);
        assert_eq!(knn.predict(&[vec![0.0, 0.0]]), None);
        for i in 0..50 {
            let x = i as f64 / 49.0;
            let noise = ((i * 37 % 11) as f64 - 5.0) * 1000.0 / 5.0;
            knn.add(vec![x, noise], x * x);
        }
        assert_eq!(knn.len(), 50);
        let p = knn.predict(&[vec![0.5, 0.0], vec![0.9, 0.0], vec![0.1, 0.0]]).unwrap();
        assert!(p[1] > p[0] && p[0] > p[2], "{p:?}");
        // One point fit: every prediction is its reward; k above the count averages all.
        let mut one = Knn::new(5);
        one.add(vec![1.0, 2.0], 0.7);
        assert_eq!(one.predict(&[vec![9.0, 9.0]]).unwrap(), vec![0.7]);
        // An exact match with k = 1 gives its reward back; ties go to the earlier point.
        let mut exact = Knn::new(1);
        exact.add(vec![0.0], 0.1);
        exact.add(vec![1.0], 0.9);
        exact.add(vec![1.0], 0.5);
        assert_eq!(exact.predict(&[vec![1.0], vec![0.2]]).unwrap(), vec![0.9, 0.1]);
    }

    /// Two feature sets, one of 100 features that carry nothing and one of a single feature
    /// that carries the reward: ungrouped, the 100 outvote the one; grouped, each set weighs
    /// the same and the informative one decides.
    #[test]
    fn grouped_sets_weigh_the_same_whatever_their_size() {
        let point = |i: usize| {
            let mut f: Vec<f64> = (0..100).map(|d| ((i * 7 + d * 13) % 17) as f64).collect();
            f.push(i as f64);
            (f, i as f64)
        };
        let (mut flat, mut grouped) = (Knn::new(1), Knn::grouped(1, vec![100, 1]));
        for i in 0..20 {
            let (f, r) = point(i);
            flat.add(f.clone(), r);
            grouped.add(f, r);
        }
        // A query whose noise equals point 3's but whose signal is point 15's.
        let mut q = point(3).0;
        q[100] = 15.0;
        assert_eq!(flat.predict(std::slice::from_ref(&q)).unwrap(), vec![3.0]);
        assert_eq!(grouped.predict(&[q]).unwrap(), vec![15.0]);
    }
}
