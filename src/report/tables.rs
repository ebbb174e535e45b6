//! The report's tables: the final value of each run's metric (the test accuracy of an image
//! task, the validation loss of a language model) as mean ± std over seeds, grouped by network
//! × dataset × recipe × activation, each group compared with a baseline of the same network,
//! dataset and recipe in the metric's own direction (`stats`: interval, p-value, verdict); the
//! top formulas of a sample-based search; and a plain table type that renders to Markdown and
//! HTML. A network serves one task, so a comparison never mixes tasks or metrics.
//!
//! Only finished eval runs ([`Run::progress`]) are final results, and each seed counts once
//! per group: when two finished runs of a group share a seed, the one whose `errors.json` was
//! written last is used (a rerun supersedes the run it repeats) and the group says which runs
//! it left out, so that neither a killed run nor a copied run can pose as another sample.

use std::collections::BTreeMap;

use super::runs::{Recipe, Run, RunKind, Sample};
use super::stats::Summary;

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

/// The evals of one network × dataset × recipe × activation.
#[derive(Clone, Debug, PartialEq)]
pub struct ResultGroup {
    pub network: String,
    pub dataset: String,
    pub recipe: Recipe,
    pub activation: String,
    /// What the group's runs are judged by (`test_acc`, `valid_loss`) and its direction.
    pub metric: String,
    pub higher_is_better: bool,
    /// (seed, final value of the metric) of every finished run that measured one, one per seed.
    pub finals: Vec<(Option<u64>, f64)>,
    pub mean: f64,
    pub std: f64,
    /// Seeds that more than one finished run of the group holds.
    pub repeated: Vec<Repeated>,
}

/// One seed in several runs of a group: the run whose result is used and those left out.
#[derive(Clone, Debug, PartialEq)]
pub struct Repeated {
    pub seed: u64,
    pub used: String,
    pub left_out: Vec<String>,
}

/// Finished eval runs grouped by network × dataset × recipe × activation, one run per seed
/// (see the module doc), with the mean and sample standard deviation of their final test
/// accuracy; groups without any test accuracy are left out. Sorted by network, dataset,
/// recipe, then mean accuracy (best first). Two recipes with the same label get the label
/// told apart ("recipe 2").
pub fn result_groups(runs: &[Run]) -> Vec<ResultGroup> {
    // (network, dataset, recipe, activation) -> the group's finished runs with a test accuracy
    type Key = (String, String, Recipe, String);
    let mut groups: BTreeMap<Key, Vec<&Run>> = BTreeMap::new();
    for run in runs.iter().filter(|r| matches!(r.kind, RunKind::Eval) && r.finished()) {
        let e = &run.errors;
        if e.headline().is_some() {
            let key = (e.network.clone(), e.dataset.clone(), run.recipe.clone(), e.activation.clone());
            groups.entry(key).or_default().push(run);
        }
    }
    let mut out: Vec<ResultGroup> = groups
        .into_iter()
        .map(|((network, dataset, recipe, activation), runs)| {
            let (kept, repeated) = one_per_seed(runs);
            let finals: Vec<(Option<u64>, f64)> =
                kept.iter().filter_map(|r| Some((r.errors.seed, r.errors.headline()?))).collect();
            let accs: Vec<f64> = finals.iter().map(|f| f.1).collect();
            let Summary { mean, std, .. } = Summary::of(&accs);
            let (metric, higher_is_better) = (kept[0].errors.metric.clone(), kept[0].errors.higher_is_better);
            ResultGroup { network, dataset, recipe, activation, metric, higher_is_better, finals, mean, std, repeated }
        })
        .collect();
    tell_recipes_apart(&mut out);
    // Best first in the metric's direction.
    let best_first = |g: &ResultGroup| if g.higher_is_better { -g.mean } else { g.mean };
    out.sort_by(|a, b| {
        (&a.network, &a.dataset, &a.recipe)
            .cmp(&(&b.network, &b.dataset, &b.recipe))
            .then(best_first(a).total_cmp(&best_first(b)))
    });
    out
}

/// Recipes that differ in a field the label does not show (lr, batch size, ...) get
/// " (recipe 2)", " (recipe 3)", ... after the label, in key order.
fn tell_recipes_apart(groups: &mut [ResultGroup]) {
    // label -> its distinct keys, in order (a BTreeSet iterates sorted)
    let mut keys_by_label: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    for g in groups.iter() {
        keys_by_label.entry(g.recipe.label.clone()).or_default().insert(g.recipe.key.clone());
    }
    for g in groups.iter_mut() {
        let keys = &keys_by_label[&g.recipe.label];
        if keys.len() > 1 {
            let i = keys.iter().position(|k| *k == g.recipe.key).expect("the group's own key");
            g.recipe.label = format!("{} (recipe {})", g.recipe.label, i + 1);
        }
    }
}

/// The runs with each seed once (the one written last; by name if that ties), in their
/// order, and the seeds that were repeated. Runs without a seed are all kept.
fn one_per_seed(runs: Vec<&Run>) -> (Vec<&Run>, Vec<Repeated>) {
    let mut by_seed: BTreeMap<u64, Vec<&Run>> = BTreeMap::new();
    for run in runs.iter().filter_map(|r| Some((r.errors.seed?, *r))) {
        by_seed.entry(run.0).or_default().push(run.1);
    }
    let mut repeated = Vec::new();
    let mut left_out: Vec<&str> = Vec::new();
    for (seed, mut same) in by_seed.into_iter().filter(|(_, same)| same.len() > 1) {
        same.sort_by(|a, b| a.written.cmp(&b.written).then(a.name.cmp(&b.name)));
        let used = same.pop().expect("two or more runs");
        left_out.extend(same.iter().map(|r| r.name.as_str()));
        repeated.push(Repeated {
            seed,
            used: used.name.clone(),
            left_out: same.iter().map(|r| r.name.clone()).collect(),
        });
    }
    let kept = runs.into_iter().filter(|r| !left_out.contains(&r.name.as_str())).collect();
    (kept, repeated)
}

/// The report's results table: each group with mean ± std, its seeds and the 95% interval of
/// its mean, compared with the `baseline` group (a canonical formula) of the same network,
/// dataset and recipe where there is one (see [`comparison_table`]); a group without such a
/// baseline says so.
pub fn results_table(groups: &[ResultGroup], baseline: &Baseline) -> Table {
    comparison_rows(groups, baseline, false).expect("a lenient table never fails")
}

/// Every group compared with the group of the same network, dataset and recipe whose
/// activation is `baseline` (a canonical formula): one row per group with mean ± std, its
/// seeds, the difference to the baseline with its 95% interval, the p-value, the verdict in
/// words and the seeds a difference of that size would need (see `report::stats`). Errors: no
/// group of the baseline for some network, dataset and recipe (the message lists the
/// activations there are).
pub fn comparison_table(groups: &[ResultGroup], baseline: &Baseline) -> anyhow::Result<Table> {
    comparison_rows(groups, baseline, true)
}

fn comparison_rows(groups: &[ResultGroup], baseline: &Baseline, strict: bool) -> anyhow::Result<Table> {
    use super::stats::compare_directed;
    let pairs = |g: &ResultGroup| g.finals.iter().map(|&(s, v)| (s.unwrap_or(0), v)).collect::<Vec<_>>();
    let metric = metric_header(groups);
    let headers = [
        "network",
        "dataset",
        "recipe",
        "activation",
        metric.as_str(),
        "seeds",
        "95% CI of mean",
        "vs baseline [95% CI]",
        "p",
        "verdict",
        "seeds needed",
    ];
    let same_setting =
        |a: &ResultGroup, b: &ResultGroup| a.network == b.network && a.dataset == b.dataset && a.recipe == b.recipe;
    let mut rows = Vec::new();
    for g in groups {
        let baseline = baseline.of(&g.network);
        let baseline = baseline.as_str();
        let base = groups.iter().find(|b| same_setting(b, g) && b.activation == baseline);
        if base.is_none() && strict {
            let there: Vec<String> =
                groups.iter().filter(|b| same_setting(b, g)).map(|b| super::shown(&b.activation)).collect();
            anyhow::bail!(
                "no finished run of the baseline {} on {} / {} ({}); pass --baseline with one of: {}",
                super::shown(baseline),
                g.network,
                super::shown(&g.dataset),
                g.recipe.label,
                there.join(", ")
            );
        }
        let seeds = g.finals.iter().map(|f| f.0.map_or("?".into(), |s| s.to_string())).collect::<Vec<_>>().join(",");
        let repeated = match g.repeated.is_empty() {
            true => String::new(),
            false => {
                let twice: Vec<String> = g.repeated.iter().map(|r| r.seed.to_string()).collect();
                format!("; seed {} in several runs, one used", twice.join(", "))
            }
        };
        let accs: Vec<f64> = g.finals.iter().map(|f| f.1).collect();
        // Accuracies in points to 2 decimals, losses to 4.
        let places = if g.higher_is_better { 2 } else { 4 };
        let mut row = vec![
            g.network.clone(),
            super::shown(&g.dataset),
            g.recipe.label.clone(),
            super::shown(&g.activation),
            format!("{:.places$} ± {:.places$}", g.mean, g.std),
            format!("{} ({seeds}{repeated})", g.finals.len()),
            super::stats::Summary::of(&accs)
                .ci95()
                .map_or("(one seed)".into(), |(lo, hi)| format!("[{lo:.places$}, {hi:.places$}]")),
        ];
        match base {
            Some(base) if std::ptr::eq(g, base) => {
                row.extend(["baseline".to_string(), String::new(), String::new(), String::new()])
            }
            Some(base) => {
                let c = compare_directed(&pairs(g), &pairs(base), g.higher_is_better);
                row.push(c.difference_text(places));
                row.push(c.p_text());
                row.push(c.verdict.words());
                row.push(super::stats::seeds_needed_text(c.seeds_needed));
            }
            None => row.extend([
                format!("(no {} run with this recipe)", super::shown(baseline)),
                String::new(),
                String::new(),
                String::new(),
            ]),
        }
        rows.push(row);
    }
    Ok(Table { headers: headers.iter().map(|h| h.to_string()).collect(), rows })
}

/// The activation each group is compared with: one for every network (`--baseline`, a
/// canonical formula), or each network's usual one (relu for a ResNet, gelu for a transformer),
/// so that a table holding image and language runs compares each with its own baseline.
#[derive(Clone, Debug, PartialEq)]
pub enum Baseline {
    One(String),
    Usual,
}

impl Baseline {
    /// The baseline (a canonical formula) of the groups of `network`.
    pub fn of(&self, network: &str) -> String {
        match self {
            Baseline::One(formula) => formula.clone(),
            Baseline::Usual => {
                let usual = crate::model::Network::parse(network).map_or("relu", |n| n.usual_activation());
                crate::space::resolve::resolve_activation(usual).map_or(usual.to_string(), |f| f.to_string())
            }
        }
    }

    /// In words, for text that names it.
    pub fn shown(&self) -> String {
        match self {
            Baseline::One(formula) => super::shown(formula),
            Baseline::Usual => "each network's usual activation (relu for a ResNet, gelu for a transformer)".into(),
        }
    }
}

impl From<&str> for Baseline {
    fn from(formula: &str) -> Baseline {
        Baseline::One(formula.to_string())
    }
}

/// The header of the groups' metric column: `test acc (%)` for image tasks, the validation
/// loss for language models, test BLEU for translation, all names when the groups hold
/// several tasks.
pub fn metric_header(groups: &[ResultGroup]) -> String {
    let metrics: std::collections::BTreeSet<&str> = groups.iter().map(|g| g.metric.as_str()).collect();
    let name = |m: &str| match m {
        "test_acc" => "test acc (%)".to_string(),
        "valid_loss" => "valid loss (nats, lower is better)".to_string(),
        "test_bleu" => "test BLEU (higher is better)".to_string(),
        other => other.to_string(),
    };
    match metrics.len() {
        0 => name("test_acc"),
        _ => metrics.into_iter().map(name).collect::<Vec<_>>().join(" or "),
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
        finished(named(network, activation, seed, test, &format!("{activation}-{seed}")))
    }

    fn finished(run: Run) -> Run {
        Run { planned_epochs: Some(run.errors.epochs()), final_file: true, ..run }
    }

    fn named(network: &str, activation: &str, seed: u64, test: &[f64], name: &str) -> Run {
        let curves = [("train_acc".to_string(), vec![1.0; test.len()]), ("test_acc".to_string(), test.to_vec())];
        Run {
            dir: "x".into(),
            name: name.into(),
            errors: Errors {
                seed: Some(seed),
                network: network.into(),
                dataset: "cifar10".into(),
                activation: activation.into(),
                curves: curves.into_iter().collect(),
                formulas: vec![],
                metric: "test_acc".into(),
                higher_is_better: true,
            },
            kind: RunKind::Eval,
            planned_epochs: None,
            final_file: false,
            written: None,
            recipe: Default::default(),
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
        let table = results_table(&groups, &"relu".into());
        assert_eq!(
            table.rows[1][..7],
            ["resnet20", "cifar10", "", "relu", "91.00 ± 1.41", "2 (0,1)", "[78.29, 103.71]"]
        );
        assert_eq!(table.rows[1][7], "baseline");
        assert_eq!(table.rows[0][7], "+2.00 (no interval from one seed)");
        // No baseline in a setting: said, not an error.
        assert_eq!(results_table(&groups, &"gelu".into()).rows[0][7], "(no gelu run with this recipe)");
    }

    #[test]
    fn unfinished_runs_are_left_out_and_a_repeated_seed_counts_once() {
        use std::time::{Duration, SystemTime};
        let at = |secs: u64| Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs));
        let killed =
            Run { planned_epochs: Some(3), final_file: false, ..named("resnet8", "relu", 0, &[20.0], "killed") };
        let no_model = Run { final_file: false, ..eval("resnet8", "relu", 2, &[90.0]) };
        let runs = vec![
            Run { written: at(10), ..finished(named("resnet8", "relu", 0, &[30.0, 40.0, 50.0], "first")) },
            Run { written: at(20), ..finished(named("resnet8", "relu", 0, &[30.0, 40.0, 60.0], "rerun")) },
            eval("resnet8", "relu", 1, &[70.0]),
            killed,
            no_model,
        ];
        let groups = result_groups(&runs);
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].finals, vec![(Some(0), 60.0), (Some(1), 70.0)]);
        assert_eq!(
            groups[0].repeated,
            vec![Repeated { seed: 0, used: "rerun".into(), left_out: vec!["first".into()] }]
        );
        assert_eq!(results_table(&groups, &"relu".into()).rows[0][5], "2 (0,1; seed 0 in several runs, one used)");
        // Nothing finished: no group at all.
        assert!(result_groups(&runs[3..]).is_empty());
    }

    #[test]
    fn top_k_keeps_each_formula_once_at_its_best() {
        let child =
            |child, formula: &str, reward| Child { child, formula: formula.into(), reward, steps: None, seconds: None };
        let sample = Sample {
            method: "random".into(),
            children: vec![child(1, "x", 0.5), child(2, "sin(x)", 0.8), child(3, "x", 0.9), child(4, "relu", f64::NAN)],
            ..Default::default()
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

    /// Language models are judged by their validation loss: a group with a lower loss comes
    /// first and is better, the numbers keep 4 decimals, and the header names the loss.
    #[test]
    fn a_loss_is_compared_in_its_own_direction() {
        let lm = |activation: &str, seed: u64, loss: f64| {
            let mut run = eval("gpt-micro", activation, seed, &[]);
            run.errors.curves.insert("valid_loss".into(), vec![2.5, loss]);
            run.errors.metric = "valid_loss".into();
            run.errors.higher_is_better = false;
            run
        };
        let mut runs = Vec::new();
        for (seed, (g, r)) in [(1.880, 1.910), (1.885, 1.921), (1.879, 1.915)].into_iter().enumerate() {
            runs.push(lm("gelu(x)", seed as u64, g));
            runs.push(lm("relu(x)", seed as u64, r));
        }
        let groups = result_groups(&runs);
        assert_eq!(groups[0].activation, "gelu(x)", "the lower loss first");
        assert_eq!(metric_header(&groups), "valid loss (nats, lower is better)");
        let table = comparison_table(&groups, &"gelu(x)".into()).unwrap();
        let relu = table.rows.iter().find(|r| r[3] == "relu(x)").unwrap();
        assert_eq!(relu[4], "1.9153 ± 0.0055");
        assert_eq!(relu[9], "worse", "{relu:?}");
        let table = comparison_table(&groups, &"relu(x)".into()).unwrap();
        let gelu = table.rows.iter().find(|r| r[3] == "gelu(x)").unwrap();
        assert_eq!(gelu[9], "better", "{gelu:?}");
        // With ResNets beside them and no --baseline, each network has its usual one: gelu for
        // the GPT, relu for the ResNet, and the header names both metrics.
        runs.push(eval("resnet8", "relu(x)", 0, &[50.0]));
        runs.push(eval("resnet8", "silu(x)", 0, &[52.0]));
        let groups = result_groups(&runs);
        let table = comparison_table(&groups, &Baseline::Usual).unwrap();
        let row = |network: &str, activation: &str| {
            table.rows.iter().find(|r| r[0] == network && r[3] == activation).unwrap().clone()
        };
        assert_eq!(row("gpt-micro", "gelu(x)")[7], "baseline");
        assert_eq!(row("resnet8", "relu(x)")[7], "baseline");
        assert_eq!(row("gpt-micro", "relu(x)")[9], "worse");
        assert_eq!(table.headers[4], "test acc (%) or valid loss (nats, lower is better)");
    }

    #[test]
    fn comparison_rows_carry_interval_p_value_and_verdict() {
        let mut runs = Vec::new();
        for (seed, (r, s)) in [(50.0, 51.0), (51.0, 53.0), (52.0, 55.0)].into_iter().enumerate() {
            runs.push(eval("resnet8", "relu(x)", seed as u64, &[r]));
            runs.push(eval("resnet8", "silu(x)", seed as u64, &[s]));
        }
        let table = comparison_table(&result_groups(&runs), &"relu(x)".into()).unwrap();
        let silu = table.rows.iter().find(|r| r[3] == "silu(x)").unwrap();
        assert_eq!(silu[4], "53.00 ± 2.00");
        assert_eq!(silu[5], "3 (0,1,2)");
        assert_eq!(silu[7], "+2.00 [-0.48, +4.48], paired by seed");
        assert_eq!(silu[8], "0.074");
        assert_eq!(silu[9], "no detectable difference with 3 seeds");
        let relu = table.rows.iter().find(|r| r[3] == "relu(x)").unwrap();
        assert_eq!(relu[7], "baseline");
        let err = comparison_table(&result_groups(&runs), &"gelu(x)".into()).unwrap_err().to_string();
        assert!(err.contains("no finished run of the baseline gelu(x)") && err.contains("silu(x)"), "{err}");
        // One seed: a difference, no interval, and not a verdict.
        let one = [eval("resnet8", "relu(x)", 0, &[50.0]), eval("resnet8", "silu(x)", 0, &[60.0])];
        let table = comparison_table(&result_groups(&one), &"relu(x)".into()).unwrap();
        let silu = table.rows.iter().find(|r| r[3] == "silu(x)").unwrap();
        assert_eq!(silu[7], "+10.00 (no interval from one seed)");
        assert!(silu[9].starts_with("not a verdict"), "{}", silu[9]);
    }

    /// Runs of another recipe (epochs, subset, lr, ...) are another group, compared only with
    /// the baseline of their own recipe.
    #[test]
    fn recipes_are_kept_apart() {
        let recipe = |epochs: u64, lr: f64| {
            Recipe::of_config(
                &serde_json::json!({"epochs": epochs, "lr": lr, "subset": 5000, "seed": 3, "out": "x", "threads": 2}),
            )
        };
        let with = |run: Run, r: Recipe| Run { recipe: r, ..run };
        let mut runs = Vec::new();
        for seed in 0..2u64 {
            runs.push(with(eval("resnet8", "relu(x)", seed, &[50.0 + seed as f64]), recipe(3, 0.1)));
            runs.push(with(eval("resnet8", "silu(x)", seed, &[60.0 + seed as f64]), recipe(1, 0.1)));
            runs.push(with(eval("resnet8", "silu(x)", seed, &[40.0 + seed as f64]), recipe(3, 0.1)));
            runs.push(with(eval("resnet8", "silu(x)", seed, &[45.0 + seed as f64]), recipe(3, 0.05)));
        }
        assert_eq!(
            recipe(3, 0.1),
            Recipe::of_config(&serde_json::json!({"lr": 0.1, "epochs": 3, "subset": 5000, "seed": 9}))
        );
        let groups = result_groups(&runs);
        assert_eq!(groups.len(), 4);
        let labels: Vec<&str> = groups.iter().map(|g| g.recipe.label.as_str()).collect();
        assert!(labels.contains(&"1 epoch on 5000 images, all test"), "{labels:?}");
        assert!(
            labels.iter().filter(|l| l.starts_with("3 epochs on 5000 images, all test (recipe ")).count() == 3,
            "{labels:?}"
        );
        let table = results_table(&groups, &"relu(x)".into());
        let row = |acc: &str| table.rows.iter().find(|r| r[4].starts_with(acc)).unwrap().clone();
        assert_eq!(row("40.50")[7], "-10.00 (no interval: no spread), paired by seed");
        assert_eq!(row("60.50")[7], "(no relu(x) run with this recipe)");
        let err = comparison_table(&groups, &"relu(x)".into()).unwrap_err().to_string();
        assert!(err.contains("1 epoch on 5000 images"), "{err}");
    }
}
