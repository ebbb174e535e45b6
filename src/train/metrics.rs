//! Loss and top-1/top-5 accuracy accumulated over batches.

use rayon::prelude::*;

/// Running sums over one pass of a split.
#[derive(Clone, Copy, Debug, Default)]
pub struct Meter {
    pub loss_sum: f64,
    pub top1: usize,
    pub top5: usize,
    pub count: usize,
}

impl Meter {
    /// Add a batch: `logits` is row-major `[n, classes]`, `loss` the batch's mean loss.
    pub fn add(&mut self, logits: &[f32], labels: &[i64], loss: f64) {
        self.add_ignoring(logits, labels, loss, None);
    }

    /// [`Meter::add`] where rows labelled `ignore` (padding) count for nothing: `loss` is the
    /// mean over the other rows.
    pub fn add_ignoring(&mut self, logits: &[f32], labels: &[i64], loss: f64, ignore: Option<i64>) {
        let rows = labels.len();
        if rows == 0 {
            return;
        }
        let classes = logits.len() / rows;
        // Per row (in parallel: a translation batch is 1536 rows of 8000): whether it counts,
        // and the rank of its target, how many classes score strictly higher.
        let ranks: Vec<usize> = logits
            .par_chunks_exact(classes)
            .zip(labels)
            .filter(|&(_, &label)| Some(label) != ignore)
            .map(|(row, &label)| row.iter().filter(|&&v| v > row[label as usize]).count())
            .collect();
        self.top1 += ranks.iter().filter(|&&r| r == 0).count();
        self.top5 += ranks.iter().filter(|&&r| r < 5).count();
        self.loss_sum += loss * ranks.len() as f64;
        self.count += ranks.len();
    }

    /// Adds another meter's sums (a batch's, say).
    pub fn merge(&mut self, other: &Meter) {
        self.loss_sum += other.loss_sum;
        self.top1 += other.top1;
        self.top5 += other.top5;
        self.count += other.count;
    }

    pub fn loss(&self) -> f64 {
        self.loss_sum / self.count.max(1) as f64
    }

    /// Top-1 accuracy in percent.
    pub fn acc(&self) -> f64 {
        100.0 * self.top1 as f64 / self.count.max(1) as f64
    }

    /// Top-5 accuracy in percent.
    pub fn acc5(&self) -> f64 {
        100.0 * self.top5 as f64 / self.count.max(1) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_top1_and_top5() {
        let mut m = Meter::default();
        // Two samples, 6 classes: the first is right, the second's label ranks 6th.
        let logits = [5.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0];
        m.add(&logits, &[0, 0], 1.0);
        assert_eq!(m.top1, 1);
        assert_eq!(m.top5, 1);
        assert_eq!(m.acc(), 50.0);
        assert_eq!(m.loss(), 1.0);
    }
}
