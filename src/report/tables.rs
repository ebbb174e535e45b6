//! The report's tables: final test accuracy as mean ± std over seeds, grouped by network ×
//! dataset × activation; the top formulas of a sample-based search; and a plain table type
//! that renders to Markdown and HTML.

use std::collections::BTreeMap;

use super::runs::{Run, Sample};
use crate::train::seeds::mean_std;

/// A table of text cells.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn to_markdown(&self) -> String {
        let cell = |s: &str| s.replace('|', "\\|");
        let mut out = format!("| {} |\n", self.headers.iter().map(|h| cell(h)).collect::<Vec<_>>().join(" | "));
        out += &format!("|{}\n", "---|".repeat(self.headers.len()));
        for row in &self.rows {
            out += &format!("| {} |\n", row.iter().map(|c| cell(c)).collect::<Vec<_>>().join(" | "));
        }
        out
    }

    pub fn to_html(&self) -> String {
        let mut out = String::from("<table>\n<tr>");
        for h in &self.headers {
            out += &format!("<th>{}</th>", escape(h));
        }
        out += "</tr>\n";
        for row in &self.rows {
            out += "<tr>";
            for c in row {
                out += &format!("<td>{}</td>", escape(c));
            }
            out += "</tr>\n";
        }
        out + "</table>\n"
    }
}

/// Text made safe inside HTML.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The evals of one network × dataset × activation.
#[derive(Clone, Debug, PartialEq)]
pub struct ResultGroup {
    pub network: String,
    pub dataset: String,
    pub activation: String,
    /// (seed, final test accuracy) of every run that measured one.
    pub finals: Vec<(Option<u64>, f64)>,
    pub mean: f64,
    pub std: f64,
}

/// Eval runs grouped by network × dataset × activation, with the mean and sample standard
/// deviation of their final test accuracy; groups without any test accuracy are left out.
/// Sorted by network, dataset, then mean accuracy (best first).
pub fn result_groups(runs: &[Run]) -> Vec<ResultGroup> {
    // (network, dataset, activation) -> (seed, final test accuracy) per run
    type Key = (String, String, String);
    let mut groups: BTreeMap<Key, Vec<(Option<u64>, f64)>> = BTreeMap::new();
    for run in runs.iter().filter(|r| matches!(r.kind, super::runs::RunKind::Eval)) {
        let e = &run.errors;
        if let Some(acc) = e.final_test_acc() {
            groups.entry((e.network.clone(), e.dataset.clone(), e.activation.clone())).or_default().push((e.seed, acc));
        }
    }
    let mut out: Vec<ResultGroup> = groups
        .into_iter()
        .map(|((network, dataset, activation), finals)| {
            let accs: Vec<f64> = finals.iter().map(|f| f.1).collect();
            let (mean, std) = mean_std(&accs);
            ResultGroup { network, dataset, activation, finals, mean, std }
        })
        .collect();
    out.sort_by(|a, b| (&a.network, &a.dataset).cmp(&(&b.network, &b.dataset)).then(b.mean.total_cmp(&a.mean)));
    out
}

pub fn results_table(groups: &[ResultGroup]) -> Table {
    Table {
        headers: ["network", "dataset", "activation", "test acc (%)", "seeds"].map(String::from).to_vec(),
        rows: groups
            .iter()
            .map(|g| {
                let seeds: Vec<String> = g.finals.iter().map(|(s, _)| s.map_or("?".into(), |s| s.to_string())).collect();
                vec![
                    g.network.clone(),
                    g.dataset.clone(),
                    g.activation.clone(),
                    format!("{:.2} ± {:.2}", g.mean, g.std),
                    format!("{} ({})", g.finals.len(), seeds.join(", ")),
                ]
            })
            .collect(),
    }
}

/// The `k` best distinct formulas of a sample-based search (each at its best reward).
pub fn top_k(sample: &Sample, k: usize) -> Table {
    let mut best: BTreeMap<&str, (f64, usize)> = BTreeMap::new();
    for c in sample.children.iter().filter(|c| c.reward.is_finite()) {
        let entry = best.entry(&c.formula).or_insert((c.reward, c.child));
        if c.reward > entry.0 {
            *entry = (c.reward, c.child);
        }
    }
    let mut rows: Vec<(&str, f64, usize)> = best.into_iter().map(|(f, (r, c))| (f, r, c)).collect();
    rows.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.2.cmp(&b.2)));
    Table {
        headers: ["rank", "formula", "reward", "child"].map(String::from).to_vec(),
        rows: rows
            .iter()
            .take(k)
            .enumerate()
            .map(|(i, (f, r, c))| vec![(i + 1).to_string(), f.to_string(), format!("{r:.4}"), c.to_string()])
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::runs::{Child, Errors, RunKind};

    fn eval(network: &str, activation: &str, seed: u64, test: &[f64]) -> Run {
        let curves = [("train_acc".to_string(), vec![1.0; test.len()]), ("test_acc".to_string(), test.to_vec())];
        Run {
            dir: "x".into(),
            name: format!("{activation}-{seed}"),
            errors: Errors {
                seed: Some(seed),
                network: network.into(),
                dataset: "cifar10".into(),
                activation: activation.into(),
                curves: curves.into_iter().collect(),
                formulas: vec![],
            },
            kind: RunKind::Eval,
        }
    }

    #[test]
    fn groups_by_network_dataset_activation_with_sample_std() {
        let runs = vec![
            eval("resnet20", "relu", 0, &[50.0, 90.0]),
            eval("resnet20", "relu", 1, &[50.0, 92.0]),
            eval("resnet20", "silu", 0, &[93.0]),
            eval("resnet8", "relu", 0, &[80.0]),
            eval("resnet20", "gelu", 0, &[]),
        ];
        let groups = result_groups(&runs);
        let keys: Vec<(&str, &str)> = groups.iter().map(|g| (g.network.as_str(), g.activation.as_str())).collect();
        assert_eq!(keys, [("resnet20", "silu"), ("resnet20", "relu"), ("resnet8", "relu")]);
        let relu = &groups[1];
        assert_eq!(relu.finals, vec![(Some(0), 90.0), (Some(1), 92.0)]);
        assert!((relu.mean - 91.0).abs() < 1e-12 && (relu.std - 2f64.sqrt()).abs() < 1e-12);
        assert_eq!(groups[0].std, 0.0);
        let table = results_table(&groups);
        assert_eq!(table.rows[1], ["resnet20", "cifar10", "relu", "91.00 ± 1.41", "2 (0, 1)"]);
    }

    #[test]
    fn top_k_keeps_each_formula_once_at_its_best() {
        let child = |child, formula: &str, reward| Child { child, formula: formula.into(), reward };
        let sample = Sample {
            method: "random".into(),
            children: vec![child(1, "x", 0.5), child(2, "sin(x)", 0.8), child(3, "x", 0.9), child(4, "relu", f64::NAN)],
        };
        let t = top_k(&sample, 5);
        assert_eq!(t.rows, vec![vec!["1", "x", "0.9000", "3"], vec!["2", "sin(x)", "0.8000", "2"]]);
    }

    #[test]
    fn tables_render_and_escape() {
        let t = Table { headers: vec!["f".into()], rows: vec![vec!["a<b|c".into()]] };
        assert_eq!(t.to_markdown(), "| f |\n|---|\n| a<b\\|c |\n");
        assert!(t.to_html().contains("<td>a&lt;b|c</td>"));
    }
}
