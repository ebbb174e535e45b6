//! The binary as a user runs it: bad input gives one clear `error:` line and a non-zero exit
//! code, never a panic; a good run writes every output file.

mod common;

use common::actsearch;

use std::process::Output;

use common::assert_clean_error;

#[test]
fn malformed_formula() {
    let dir = tempfile::tempdir().unwrap();
    let out = actsearch(&["eval", "--activation", "x*sigmoid(b*x", "--dataset", "cifar10"], dir.path());
    assert_clean_error(&out, "column");
}

#[test]
fn unknown_activation_name() {
    let dir = tempfile::tempdir().unwrap();
    let out = actsearch(&["eval", "--activation", "relu2"], dir.path());
    assert_clean_error(&out, "actsearch functions");
}

#[test]
fn unknown_network() {
    let dir = tempfile::tempdir().unwrap();
    let out = actsearch(&["eval", "--activation", "relu", "--network", "resnet21"], dir.path());
    assert_clean_error(&out, "resnet20");
}

#[test]
fn missing_dataset_folder() {
    let dir = tempfile::tempdir().unwrap();
    let out = actsearch(&["eval", "--activation", "relu", "--dataset", "no/such/folder"], dir.path());
    assert_clean_error(&out, "no/such/folder");
}

#[test]
fn cifar_not_downloaded() {
    let dir = tempfile::tempdir().unwrap();
    let out = actsearch(&["eval", "--activation", "relu", "--dataset", "cifar10", "--data-dir", "empty"], dir.path());
    // No network in CI: the automatic download fails with a clear message and the offline way.
    assert_clean_error(&out, "cannot download");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--dataset PATH"));
}

#[test]
fn truncated_cifar_file() {
    let dir = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(&dir.path().join("data"), 8);
    let file = dir.path().join("data/cifar-10-batches-bin/data_batch_2.bin");
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() - 100]).unwrap();
    let out = actsearch(&["eval", "--activation", "relu", "--epochs", "1"], dir.path());
    assert_clean_error(&out, "data_batch_2.bin");
}

#[test]
fn backend_not_built() {
    let dir = tempfile::tempdir().unwrap();
    let out = actsearch(&["eval", "--activation", "relu", "--backend", "cuda"], dir.path());
    if cfg!(feature = "cuda") {
        return;
    }
    assert_clean_error(&out, "--features cuda");
}

#[test]
fn impossible_flags() {
    let dir = tempfile::tempdir().unwrap();
    let out = actsearch(&["eval", "--activation", "relu", "--train-portion", "1.5"], dir.path());
    assert_clean_error(&out, "--train-portion");
    let out = actsearch(&["eval", "--activation", "relu", "--nesterov", "--momentum", "0"], dir.path());
    assert_clean_error(&out, "--nesterov");
    let out = actsearch(&["eval", "--activation", "relu", "--seeds", "1,1"], dir.path());
    assert_clean_error(&out, "--seeds");
    let out = actsearch(&["search", "--method", "darts", "--epochs", "2", "--warm-start", "2"], dir.path());
    assert_clean_error(&out, "--warm-start 2 leaves no epoch");
    let out = actsearch(&["search", "--method", "random", "--warm-start", "1"], dir.path());
    assert_clean_error(&out, "--warm-start only apply to the one-shot methods");
    // The transformers' flags and recipes.
    let out = actsearch(&["eval", "--activation", "silu", "--network", "resnet20", "--mlp", "gated"], dir.path());
    assert_clean_error(&out, "--mlp gated applies to the transformers");
    let out = actsearch(&["eval", "--activation", "gelu", "--network", "vit-micro", "--momentum", "0.9"], dir.path());
    assert_clean_error(&out, "trains with AdamW");
    let out = actsearch(&["eval", "--activation", "gelu", "--network", "vit-micro", "--preset", "seed"], dir.path());
    assert_clean_error(&out, "--preset seed is the seed project's ResNet recipe");
    std::fs::write(dir.path().join("input.txt"), "To be, or not to be\n").unwrap();
    let out =
        actsearch(&["eval", "--network", "vit-micro", "--activation", "gelu", "--dataset", "input.txt"], dir.path());
    assert_clean_error(&out, "a text file is a dataset for the character language models");
    let out = actsearch(&["search", "--network", "vit-micro", "--dataset", "input.txt"], dir.path());
    assert_clean_error(&out, "a text file is a dataset for the character language models");
    let out = actsearch(&["search", "--network", "vit-micro", "--warm-start-with", "nosuch"], dir.path());
    assert_clean_error(&out, "--warm-start-with 'nosuch' is not a function");
    let out = actsearch(&["search", "--warm-start-with", "x*sigmoid(b*x)"], dir.path());
    assert_clean_error(&out, "the warm start needs a fixed function of x");
    let out = actsearch(&["search", "--network", "resnet8", "--mlp", "gated"], dir.path());
    assert_clean_error(&out, "--mlp gated applies to the transformers");
    let out = actsearch(&["search", "--method", "random", "--warm-start-with", "gelu"], dir.path());
    assert_clean_error(&out, "--warm-start-with only apply to the one-shot methods");
    let out = actsearch(&["search", "--method", "random", "--child-network", "resnet8", "--mlp", "gated"], dir.path());
    assert_clean_error(&out, "--mlp gated applies to the transformers");
    assert!(!dir.path().join("runs").exists(), "a refused eval wrote {:?}", std::fs::read_dir(dir.path()));
}

#[test]
fn eval_writes_every_file_for_each_seed() {
    let dir = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(&dir.path().join("data"), 16);
    let out = actsearch(
        &[
            "eval",
            "--network",
            "resnet8",
            "--activation",
            "gdas_simple_r",
            "--epochs",
            "1",
            "--batch-size",
            "16",
            "--seeds",
            "0,1",
            "--out",
            "runs/x",
            "--train-portion",
            "0.75",
        ],
        dir.path(),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("over 2 seed(s)"), "{stdout}");
    for seed in ["seed-0", "seed-1"] {
        for file in ["config.json", "errors.json", "log.log", "model.safetensors", "checkpoint.safetensors"] {
            assert!(dir.path().join("runs/x").join(seed).join(file).exists(), "{seed}/{file} missing");
        }
        let errors: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("runs/x").join(seed).join("errors.json")).unwrap(),
        )
        .unwrap();
        for key in [
            "train_acc",
            "train_loss",
            "valid_acc",
            "valid_loss",
            "test_acc",
            "test_loss",
            "runtime",
            "train_time",
            "train_acc_top5",
            "valid_acc_top5",
            "test_acc_top5",
            "step",
        ] {
            assert_eq!(errors[key].as_array().map(|a| a.len()), Some(1), "{key}");
        }
        assert_eq!(errors["activation"], "sigmoid(sigmoid(x))*sigmoid(x)");
        // 60 training images (16 per file, 75%) in batches of 16: 4 steps; judged by test
        // accuracy.
        assert_eq!(errors["step"][0], 4);
        assert_eq!(errors["metric"], "test_acc");
        assert_eq!(errors["higher_is_better"], true);
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("runs/x/summary.json")).unwrap()).unwrap();
    assert_eq!(summary["seeds"].as_array().unwrap().len(), 2);
    assert!(summary["mean"].as_f64().is_some());
}

#[test]
fn functions_lists_named_activations_and_ops() {
    let dir = tempfile::tempdir().unwrap();
    let out = actsearch(&["functions"], dir.path());
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for name in [
        "darts_simple_r",
        "darts_complex_r",
        "drnas_simple_r",
        "drnas_complex_r",
        "gdas_simple_r",
        "mish",
        "leaky_relu",
        "sinc",
    ] {
        assert!(text.contains(name), "{name} missing from `actsearch functions`");
    }
    assert!(text.contains("(x + b)^2"));
}

#[test]
fn eval_accepts_a_genotype_file() {
    let dir = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(&dir.path().join("data"), 8);
    std::fs::write(dir.path().join("genotype.json"), r#"{"formula": "x*sigmoid(b1*x) + b2"}"#).unwrap();
    let out = actsearch(
        &[
            "eval",
            "--network",
            "resnet8",
            "--activation",
            "genotype.json",
            "--epochs",
            "1",
            "--batch-size",
            "8",
            "--out",
            "g",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let errors = std::fs::read_to_string(dir.path().join("g/errors.json")).unwrap();
    assert!(errors.contains("x*sigmoid(b1*x) + b2"), "{errors}");
}

#[test]
fn report_over_a_search_and_two_eval_seeds_writes_every_file() {
    let dir = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(&dir.path().join("data"), 16);
    let tiny = ["--network", "resnet8", "--epochs", "1", "--batch-size", "16", "--subset", "64"];
    let eval =
        [&["eval", "--activation", "silu", "--seeds", "0,1", "--out", "runs/e", "--test-subset", "32"][..], &tiny[..]]
            .concat();
    let search = [&["search", "--method", "darts", "--space", "small", "--out", "runs/s"][..], &tiny[..]].concat();
    for args in [eval, search] {
        let out = actsearch(&args, dir.path());
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let out = actsearch(&["report", "runs/e", "runs/s", "--out", "rep"], dir.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("read 3 runs") && stdout.contains("e/seed-1 (eval)") && stdout.contains("s (one-shot search)"),
        "{stdout}"
    );
    let rep = dir.path().join("rep");
    for file in
        ["report.md", "report.html", "s-alphas-site0.png", "s-alphas-site6.svg", "s-formula.png", "s-accuracy.svg"]
    {
        assert!(rep.join(file).metadata().map(|m| m.len() > 0).unwrap_or(false), "{file} missing or empty");
    }
    let md = std::fs::read_to_string(rep.join("report.md")).unwrap();
    assert!(md.contains("| resnet8 |") && md.contains("silu(x)") && md.contains("| 2 (0,1) |"), "{md}");
    let pngs =
        std::fs::read_dir(&rep).unwrap().filter(|e| e.as_ref().unwrap().path().extension().unwrap() == "png").count();
    let html = std::fs::read_to_string(rep.join("report.html")).unwrap();
    assert_eq!(html.matches("<svg").count(), pngs, "every figure inline in the HTML");
}

#[test]
fn report_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("empty")).unwrap();
    assert_clean_error(&actsearch(&["report", "empty"], dir.path()), "no runs in");
    assert_clean_error(&actsearch(&["report", "nowhere"], dir.path()), "is not a directory");
    let run = dir.path().join("run");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(run.join("config.json"), "{}").unwrap();
    assert_clean_error(&actsearch(&["report", "run"], dir.path()), "errors.json is missing");
    std::fs::write(run.join("errors.json"), "{\"train_acc\": [1, 2").unwrap();
    let out = actsearch(&["report", "run", "--out", "rep"], dir.path());
    assert_clean_error(&out, "errors.json is corrupt");
    assert!(!dir.path().join("rep").exists(), "nothing is written for bad input");
}

#[test]
fn plot_writes_png_and_svg_and_rejects_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    for out in ["f.png", "f.svg"] {
        let run =
            actsearch(&["plot", "relu", "x*sigmoid(b*x)", "--derivative", "--range", "-3,3", "--out", out], dir.path());
        assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
        assert!(String::from_utf8_lossy(&run.stdout).contains("x*sigmoid(b*x)  [params 1 (initial)]"));
    }
    assert!(image::open(dir.path().join("f.png")).is_ok());
    assert!(std::fs::read_to_string(dir.path().join("f.svg")).unwrap().contains("</svg>"));
    assert_clean_error(&actsearch(&["plot", "x*sigmoid(b*x"], dir.path()), "column");
    assert_clean_error(&actsearch(&["plot", "relu", "--out", "f.jpg"], dir.path()), ".png or .svg");
    assert_clean_error(&actsearch(&["plot", "relu", "--range", "5,-5"], dir.path()), "LOW,HIGH");
    assert_clean_error(&actsearch(&["plot", "relu", "--range=-1e308,1e308"], dir.path()), "LOW,HIGH");
    assert_clean_error(&actsearch(&["plot", "relu", "--out", "no/dir/f.png"], dir.path()), "does not exist");
}

#[test]
fn search_then_eval_compares_with_the_baseline_and_writes_the_report() {
    let dir = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(&dir.path().join("data"), 16);
    let args = [
        "search",
        "--method",
        "gdas",
        "--space",
        "small",
        "--network",
        "resnet8",
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--subset",
        "64",
        "--out",
        "runs/s",
        "--then-eval",
        "--eval-network",
        "resnet8",
        "--baseline",
        "silu",
        "--eval-seeds",
        "0,1",
    ];
    let out = actsearch(&args, dir.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("\nfound ") && stdout.contains("\nbaseline ") && stdout.contains("silu(x)"), "{stdout}");
    // Tiny runs can tie in every seed: then no interval, and the verdict says why.
    let interval = stdout.contains("95% CI") || stdout.contains("in every seed: no interval from 2 seeds");
    assert!(stdout.contains("found - baseline: ") && interval && stdout.contains("paired by seed"), "{stdout}");
    let s = dir.path().join("runs/s");
    for file in [
        "eval-found/seed-0/errors.json",
        "eval-found/seed-1/errors.json",
        "eval-baseline/summary.json",
        "summary.json",
        "report/report.html",
        "report/s-formula.png",
    ] {
        assert!(s.join(file).exists(), "{file} missing");
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["found"]["seeds"], serde_json::json!([0, 1]));
    assert_eq!(summary["baseline"]["activation"], "silu(x)");
    assert_eq!(summary["comparison"]["test"], "paired by seed");
    let verdict = summary["comparison"]["verdict"].as_str().unwrap();
    let verdicts =
        ["better", "worse", "no detectable difference with 2 seeds", "in every seed: no interval from 2 seeds"];
    assert!(verdicts.iter().any(|v| verdict.starts_with(v) || verdict.contains(v)), "{verdict}");
    // The report compares with the same baseline.
    let md = std::fs::read_to_string(s.join("report/report.md")).unwrap();
    assert!(md.contains("the difference to silu(x)") && md.contains("| baseline |"), "{md}");
    // A bad baseline fails before the search starts; so do several search seeds with --then-eval.
    let bad = [&args[..13], &["--out", "runs/t", "--then-eval", "--baseline", "relu2"]].concat();
    assert_clean_error(&actsearch(&bad, dir.path()), "relu2");
    let bad = [&args[..13], &["--out", "runs/t", "--then-eval", "--seeds", "0,1"]].concat();
    assert_clean_error(&actsearch(&bad, dir.path()), "--then-eval takes one search seed");
    assert!(!dir.path().join("runs/t").exists());
}

/// The lines of stderr that start with `prefix`.
fn stderr_lines(out: &Output, prefix: &str) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr).lines().filter(|l| l.starts_with(prefix)).map(str::to_string).collect()
}

#[test]
fn plot_warns_about_functions_it_cannot_draw_and_fails_when_none_can_be() {
    let dir = tempfile::tempdir().unwrap();
    let out = actsearch(&["plot", "x/0", "1/x", "--out", "f.svg"], dir.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let warnings = stderr_lines(&out, "warning:");
    assert!(warnings.len() == 1 && warnings[0].contains("x/0 is undefined over the whole range -5..5"), "{warnings:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("1/x") && !stdout.contains("x/0"), "{stdout}");
    let out = actsearch(&["plot", "0/0", "--out", "g.svg"], dir.path());
    assert_clean_error(&out, "nothing to draw");
    assert_eq!(stderr_lines(&out, "warning:").len(), 1);
    assert!(!dir.path().join("g.svg").exists(), "nothing is written when nothing can be drawn");
    assert_clean_error(&actsearch(&["plot", "relu", "--range", "nan,1"], dir.path()), "LOW,HIGH");
    // A title may start with '-'.
    let out = actsearch(&["plot", "relu", "--title", "-x and relu", "--out", "t.svg"], dir.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn report_leaves_out_unfinished_runs_counts_a_seed_once_and_skips_failed_folders() {
    let dir = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(&dir.path().join("data"), 16);
    let args = [
        "eval",
        "--network",
        "resnet8",
        "--activation",
        "relu",
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--subset",
        "32",
        "--test-subset",
        "16",
        "--out",
        "runs/done",
    ];
    let out = actsearch(&args, dir.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let runs = dir.path().join("runs");
    let copy = |to: &str| {
        std::fs::create_dir_all(runs.join(to)).unwrap();
        for file in ["config.json", "errors.json", "log.log", "model.safetensors"] {
            std::fs::copy(runs.join("done").join(file), runs.join(to).join(file)).unwrap();
        }
    };
    // The same seed again (a copy), and a run killed after its first epoch (no model yet).
    copy("copy");
    copy("killed");
    std::fs::remove_file(runs.join("killed/model.safetensors")).unwrap();
    let path = runs.join("killed/errors.json");
    let mut errors: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    for (_, v) in errors.as_object_mut().unwrap().iter_mut() {
        if let Some(a) = v.as_array_mut() {
            a.truncate(1);
        }
    }
    errors["test_acc"] = serde_json::json!([99.0]);
    std::fs::write(&path, errors.to_string()).unwrap();
    // A run that failed before training: config.json and log.log only.
    std::fs::create_dir_all(runs.join("failed")).unwrap();
    std::fs::copy(runs.join("done/config.json"), runs.join("failed/config.json")).unwrap();
    std::fs::write(runs.join("failed/log.log"), "error: out of memory\n").unwrap();

    let out = actsearch(&["report", "runs", "--out", "rep"], dir.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let notes = stderr_lines(&out, "note:");
    assert!(
        notes.iter().any(|n| n.contains("skipped runs/failed") && n.contains("errors.json is missing")),
        "{notes:?}"
    );
    assert!(notes.iter().any(|n| n.contains("left out of the results table: killed (1 of 2 epochs)")), "{notes:?}");
    let warnings = stderr_lines(&out, "warning:");
    assert!(
        warnings.len() == 1 && warnings[0].contains("seed 0") && warnings[0].contains("is in 2 runs"),
        "{warnings:?}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("killed (eval, unfinished: 1 of 2 epochs)"), "{stdout}");
    let md = std::fs::read_to_string(dir.path().join("rep/report.md")).unwrap();
    let row = md.lines().find(|l| l.starts_with("| resnet8 |")).unwrap();
    assert!(
        row.contains("| 1 (0; seed 0 in several runs, one used) | (one seed) | baseline |") && !row.contains("99"),
        "{row}"
    );
    // Nothing readable at all is still an error, and so is a file.
    assert_clean_error(&actsearch(&["report", "runs/failed"], dir.path()), "errors.json is missing");
    assert_clean_error(&actsearch(&["report", "runs/done/errors.json"], dir.path()), "is a file");
}

#[test]
fn long_formulas_and_paths_are_cut_to_80_characters_in_messages() {
    let dir = tempfile::tempdir().unwrap();
    let long = "relu".repeat(25_000);
    let spaced = vec!["sin(x)"; 2_000].join(" + ") + " +";
    for args in [
        vec!["plot", long.as_str()],
        vec!["plot", spaced.as_str()],
        vec!["eval", "--activation", long.as_str()],
        vec!["plot", "relu", "--range", long.as_str()],
        vec!["report", long.as_str()],
    ] {
        let out = actsearch(&args, dir.path());
        assert_clean_error(&out, "...");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.len() < 1_000,
            "{} bytes on stderr for {:?}: {}",
            stderr.len(),
            &args[..args.len() - 1],
            &stderr[..300]
        );
    }
}

#[test]
fn negative_numbers_and_hyphen_formulas_reach_the_validators() {
    let dir = tempfile::tempdir().unwrap();
    // "-x" is read as the formula, then --lr's own check speaks.
    assert_clean_error(
        &actsearch(&["eval", "--activation", "-x", "--lr", "-1"], dir.path()),
        "--lr must be a positive number, got -1",
    );
    for (flag, value) in
        [("--subset", "-1"), ("--test-subset", "-5"), ("--epochs", "-2"), ("--threads", "-1"), ("--threads", "0")]
    {
        let out = actsearch(&["eval", "--activation", "relu", flag, value], dir.path());
        assert_clean_error(&out, flag);
        assert_clean_error(&out, "must be a positive whole number");
    }
    assert_clean_error(&actsearch(&["eval", "--activation", "relu", "--seeds", "0,-1"], dir.path()), "whole number");
    assert_clean_error(
        &actsearch(&["eval", "--activation", "relu", "--momentum", "-0.5"], dir.path()),
        "--momentum must be in [0, 1)",
    );
    // search takes --test-subset like eval, and negative numbers too.
    let search = ["search", "--method", "darts", "--space", "small", "--test-subset", "5"];
    assert_clean_error(
        &actsearch(&[&search[..], &["--arch-lr", "-1"]].concat(), dir.path()),
        "--arch-lr must be a positive number",
    );
    assert_clean_error(&actsearch(&[&search[..], &["--kl-scale", "-1"]].concat(), dir.path()), "--kl-scale");
    assert_clean_error(&actsearch(&["bench", "w1", "--threads", "-2"], dir.path()), "--threads");
    assert_clean_error(&actsearch(&["bench", "w0"], dir.path()), "use w1, w2, w3, w4, w5, w6, w7, w8 or all");
    assert_clean_error(&actsearch(&["bench", "w9"], dir.path()), "unknown workload 'w9'");
    assert_clean_error(&actsearch(&["bench", "w5", "--repeat", "0"], dir.path()), "--repeat");
    assert_clean_error(&actsearch(&["bench", "w5", "--repeat", "3"], dir.path()), "add --pytorch PYTHON");
}

#[test]
fn threads_beyond_the_cores_are_capped_with_one_warning_and_bench_errors_are_not_doubled() {
    let dir = tempfile::tempdir().unwrap();
    let cores = std::thread::available_parallelism().unwrap().get();
    let more = (cores + 1).to_string();
    // The warning comes when the pool starts; the missing dataset then stops the run.
    let out =
        actsearch(&["eval", "--activation", "relu", "--threads", &more, "--dataset", "no/such/folder"], dir.path());
    let warnings = stderr_lines(&out, "warning:");
    let expected = format!("warning: --threads {more} is more than the {cores} core");
    assert!(warnings.len() == 1 && warnings[0].starts_with(&expected), "{warnings:?}");
    assert!(
        warnings[0].ends_with(&format!("of this machine; using {cores} (more would only be slower)")),
        "{warnings:?}"
    );
    if !cfg!(feature = "cuda") {
        let out = actsearch(&["bench", "w1", "--backend", "cuda"], dir.path());
        assert_clean_error(&out, "actsearch bench w1 failed: this actsearch binary was built without the cuda backend");
    }
}

/// `compare` over multi-seed evals of two activations: the table with the interval, the
/// p-value and the verdict; a missing baseline is one clear error.
#[test]
fn compare_gives_intervals_and_verdicts() {
    let dir = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(&dir.path().join("data"), 16);
    let tiny = [
        "--network",
        "resnet8",
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--subset",
        "64",
        "--test-subset",
        "32",
        "--seeds",
        "0,1",
    ];
    for act in ["relu", "silu"] {
        let out_dir = format!("runs/{act}");
        let args = [&["eval", "--activation", act, "--out", &out_dir][..], &tiny[..]].concat();
        let out = actsearch(&args, dir.path());
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let out = actsearch(&["compare", "runs"], dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let silu = stdout.lines().find(|l| l.contains("silu(x)")).unwrap_or_else(|| panic!("{stdout}"));
    assert!(silu.contains("2 (0,1)") && silu.contains("paired by seed"), "{silu}");
    let verdicts =
        ["better", "worse", "no detectable difference with 2 seeds", "in every seed: no interval from 2 seeds"];
    assert!(verdicts.iter().any(|v| silu.contains(v)), "{silu}");
    assert!(stdout.lines().any(|l| l.contains("relu(x)") && l.contains("baseline")), "{stdout}");
    let out = actsearch(&["compare", "runs", "--baseline", "gelu"], dir.path());
    assert_clean_error(&out, "no finished run of the baseline gelu(x)");
}

#[test]
fn search_over_seeds_says_whether_the_seeds_agree() {
    let dir = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(&dir.path().join("data"), 16);
    let args = [
        "search",
        "--method",
        "gdas",
        "--space",
        "small",
        "--network",
        "resnet8",
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--subset",
        "64",
        "--out",
        "runs/s",
        "--seeds",
        "0,1",
    ];
    let out = actsearch(&args, dir.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let s = dir.path().join("runs/s");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["seeds"], serde_json::json!([0, 1]));
    let mut formulas = Vec::new();
    for seed in [0, 1] {
        let g: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(s.join(format!("seed-{seed}/genotype.json"))).unwrap())
                .unwrap();
        formulas.push(g["formula"].as_str().unwrap().to_string());
        assert!(stdout.contains(&format!("seed {seed}: {}", formulas[seed])), "{stdout}");
    }
    assert_eq!(summary["formulas"], serde_json::json!(formulas));
    let agree = summary["agree"].as_bool().unwrap();
    assert_eq!(agree, summary["functions"].as_array().unwrap().len() == 1);
    assert!(stdout.contains(if agree { "seeds agree" } else { "seeds disagree" }), "{stdout}");
    // Rerun with --resume: both searches are finished, nothing changes.
    let before = std::fs::read(s.join("seed-1/genotype.json")).unwrap();
    let out = actsearch(&[&args[..], &["--resume"]].concat(), dir.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(s.join("seed-1/genotype.json")).unwrap(), before);
    assert_clean_error(
        &actsearch(&[&args[..13], &["--out", "runs/u", "--seeds", "1,1"]].concat(), dir.path()),
        "twice",
    );
    assert!(!dir.path().join("runs/u").exists());
}

/// An eval grid on this machine: 2 activations x 2 seeds as 4 processes, 2 at a time, each in
/// its own folder, one summary comparing them, and each run equal to the same eval run alone.
#[test]
fn an_eval_grid_runs_locally_and_equals_single_runs() {
    let dir = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(&dir.path().join("data"), 16);
    let recipe = ["--network", "resnet8", "--epochs", "1", "--batch-size", "16", "--train-portion", "0.75"];
    let mut args = vec!["eval", "--activation", "relu", "--activation", "gdas_simple_r", "--seeds", "0,1"];
    args.extend(recipe);
    args.extend(["--workers", "2", "--threads", "2", "--out", "grid"]);
    let out = actsearch(&args, dir.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("| resnet8 | `relu(x)` | 0,1 |") && stdout.contains("paired by seed"), "{stdout}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("grid/summary.json")).unwrap()).unwrap();
    assert_eq!(summary["groups"].as_array().unwrap().len(), 2);
    assert_eq!(summary["runs"].as_array().unwrap().len(), 4);

    let mut single = vec!["eval", "--activation", "gdas_simple_r", "--seeds", "1", "--threads", "1", "--out", "single"];
    single.extend(recipe);
    let one = actsearch(&single, dir.path());
    assert!(one.status.success(), "{}", String::from_utf8_lossy(&one.stderr));
    let acc = |p: &str| -> serde_json::Value {
        let e: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join(p).join("errors.json")).unwrap()).unwrap();
        e["test_acc"].clone()
    };
    assert_eq!(acc("grid/resnet8/gdas_simple_r/seed-1"), acc("single"));

    // The same function twice is refused before anything runs.
    let twice = actsearch(&["eval", "--activation", "relu", "--activation", "max(x, 0)", "--out", "twice"], dir.path());
    assert_clean_error(&twice, "are the same function");
    assert!(!dir.path().join("twice").exists());
    // Slurm options need the Slurm executor.
    let local = actsearch(&["eval", "--activation", "relu", "--slurm-time", "1:00:00"], dir.path());
    assert_clean_error(&local, "--slurm-time only apply to --executor slurm");
    let local = actsearch(&["search", "--method", "random", "--max-jobs", "3"], dir.path());
    assert_clean_error(&local, "--max-jobs only apply to --executor slurm");
}

/// A function that diverges in every seed: the summary says so (and not that the baseline is
/// missing), the advice does not promise that --resume fixes it, and --resume does not run it
/// again.
#[test]
fn a_grid_tells_a_divergence_from_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(&dir.path().join("data"), 16);
    let args = [
        "eval",
        "--activation",
        "relu",
        "--activation",
        "exp(exp(exp(x)))",
        "--seeds",
        "0,1",
        "--network",
        "resnet8",
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--out",
        "grid",
    ];
    for resume in [false, true] {
        let args: Vec<&str> = args.iter().copied().chain(resume.then_some("--resume")).collect();
        let out = actsearch(&args, dir.path());
        assert_clean_error(
            &out,
            "2 of 4 runs did not finish: 2 diverged, which a rerun repeats (same seed, same data): lower --lr",
        );
        assert!(!String::from_utf8_lossy(&out.stderr).contains("retry them"));
        let md = std::fs::read_to_string(dir.path().join("grid/summary.md")).unwrap();
        let row = md.lines().find(|l| l.contains("exp(exp(exp(x)))")).unwrap();
        assert!(row.contains("| diverged in 2 of 2 runs |"), "{md}");
    }
    let log = std::fs::read_to_string(dir.path().join("grid/log.log")).unwrap();
    assert_eq!(log.matches("in an earlier attempt; not run again").count(), 2, "{log}");
    // Another recipe is refused, naming the runs and the flag that differ.
    let other: Vec<&str> = args.iter().copied().chain(["--lr", "0.05", "--resume"]).collect();
    assert_clean_error(&actsearch(&other, dir.path()), "/seed-0: nothing in the saved grid vs --lr=0.05 now");
    let more: Vec<&str> = args.iter().map(|a| if *a == "0,1" { "0,1,2" } else { a }).chain(["--resume"]).collect();
    assert_clean_error(&actsearch(&more, dir.path()), "runs only in this one: grid/resnet8/exp-exp-exp-x---/seed-2");
}

/// A grid of ViTs compares with GELU unless --baseline says otherwise (ResNet grids keep ReLU).
#[test]
fn a_vit_grid_compares_with_gelu_by_default() {
    let dir = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(&dir.path().join("data"), 12);
    let args = [
        "eval",
        "--network",
        "vit-micro",
        "--activation",
        "relu",
        "--activation",
        "gelu",
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--seeds",
        "0,1",
        "--out",
        "runs/g",
    ];
    let out = actsearch(&args, dir.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let gelu = stdout.lines().find(|l| l.contains("`gelu(x)`")).unwrap();
    assert!(gelu.contains("| baseline |"), "{stdout}");
}
