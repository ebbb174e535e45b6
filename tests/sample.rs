//! Sample-based search through the binary, as a user runs it, on synthetic CIFAR-10: every
//! method writes its store, children.jsonl, top.json and a report; a controller killed with
//! kill -9 resumes to the store of an uninterrupted search without retraining anything; a
//! child with bad input fails cleanly.

mod common;

use common::{actsearch, comparable, rows};

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use actsearch::search::sample::child::Status;

/// A quick search's flags: ResNet-8 children of 3 steps of 8 images, 2 workers of 1 thread.
fn search_args<'a>(method: &'a str, space: &'a str, out: &'a str, budget: &'a str) -> Vec<&'a str> {
    vec![
        "search",
        "--method",
        method,
        "--space",
        space,
        "--budget",
        budget,
        "--batch-children",
        "3",
        "--child-network",
        "resnet8",
        "--child-steps",
        "3",
        "--batch-size",
        "8",
        "--dataset",
        "cifar10",
        "--data-dir",
        "data",
        "--workers",
        "2",
        "--threads",
        "2",
        "--population",
        "3",
        "--tournament",
        "2",
        "--out",
        out,
    ]
}

/// A child spec of 2 steps of x*sigmoid(x) on ResNet-8, reading CIFAR-10 from `data_dir`.
fn child_spec(id: usize, data_dir: &str) -> serde_json::Value {
    serde_json::json!({
        "id": id, "tokens": "identity sigmoid mul", "formula": "x*sigmoid(x)", "init": [], "network": "resnet8",
        "dataset": "cifar10", "data_dir": data_dir, "steps": 2, "batch_size": 8, "lr": 0.1, "momentum": 0.9,
        "weight_decay": 0.0005, "augment": false, "subset": null, "train_portion": 0.8, "seed": 0, "threads": 1,
        "backend": "flex"
    })
}

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(&dir.path().join("data"), 12);
    dir
}

#[test]
fn every_method_runs_end_to_end_and_the_report_reads_it() {
    let dir = setup();
    for (method, space) in [
        ("random", "core1"),
        ("evolution", "core2"),
        ("ppo", "core1"),
        ("reinforce", "core2"),
        ("exhaustive", "core1"),
        ("surrogate", "core1"),
    ] {
        let out = format!("runs/{method}");
        let run = actsearch(&search_args(method, space, &out, "3"), dir.path());
        let stdout = String::from_utf8_lossy(&run.stdout);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(run.status.success(), "{method}: {stderr}");
        assert!(stdout.contains("distinct functions trained"), "{method}: {stdout}");
        assert!(stdout.contains("  1. "), "{method}: {stdout}");
        let out = dir.path().join(&out);
        let stored = rows(&out);
        assert_eq!(stored.iter().filter(|r| r.trained()).count(), 3, "{method}");
        for r in &stored {
            assert_eq!(r.method, method);
            assert!(r.reward.is_finite() && (0.0..=1.0).contains(&r.reward));
            if r.status == Status::Ok && r.same_as.is_none() {
                assert!(out.join(format!("children/{}/result.json", r.id)).is_file());
            }
        }
        for file in ["config.json", "errors.json", "children.jsonl", "top.json", "log.log"] {
            assert!(out.join(file).is_file(), "{method}: no {file}");
        }
        let log = std::fs::read_to_string(out.join("log.log")).unwrap();
        assert!(
            log.lines().last().unwrap().starts_with("top "),
            "{method}: the log ends with {:?}",
            log.lines().last()
        );
        let report = actsearch(
            &["report", out.to_str().unwrap(), "--out", dir.path().join(format!("report-{method}")).to_str().unwrap()],
            dir.path(),
        );
        assert!(report.status.success(), "{method}: {}", String::from_utf8_lossy(&report.stderr));
        let md = std::fs::read_to_string(dir.path().join(format!("report-{method}/report.md"))).unwrap();
        assert!(md.contains("best reward so far"), "{method}: {md}");
        // compare reads searches: one search is one arm of one group, random the baseline.
        let compared = actsearch(&["compare", out.to_str().unwrap()], dir.path());
        let (said, table) = (String::from_utf8_lossy(&compared.stderr), String::from_utf8_lossy(&compared.stdout));
        assert!(compared.status.success(), "{method}: {said}");
        assert!(said.contains("compared 1 finished sample-based search in 1 group"), "{said}");
        let row = table.lines().find(|l| l.contains(&format!("| {method} |"))).unwrap_or_else(|| panic!("{table}"));
        match method {
            "random" => assert!(row.contains("| baseline |"), "{row}"),
            _ => assert!(row.contains("(no random search at full fidelity here)"), "{row}"),
        }
    }
}

/// kill -9 of the controller while children train, then `--resume` at once: the final store
/// equals an uninterrupted search's, and no child that had a result is trained again. The
/// killed search's children hold their locks 2.5 s after it died (a test hook), so the
/// resumed search's children certainly meet a lock still held, as they may in real life.
#[test]
fn a_killed_search_resumes_to_the_same_store() {
    let dir = setup();
    let straight = actsearch(&search_args("evolution", "core1", "runs/straight", "6"), dir.path());
    assert!(straight.status.success(), "{}", String::from_utf8_lossy(&straight.stderr));

    let args = search_args("evolution", "core1", "runs/killed", "6");
    let out = dir.path().join("runs/killed");
    let mut child = Command::new(env!("CARGO_BIN_EXE_actsearch"))
        .args(&args)
        .env(actsearch::exec::TEST_LINGER_ENV, "2500")
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once two children have finished (their results exist) and another has started
    // (its log exists, its result does not), before the end.
    let start = Instant::now();
    let folders = |out: &Path| -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(out.join("children")) else { return Vec::new() };
        entries.flatten().map(|e| e.path()).collect()
    };
    let results = |out: &Path| -> Vec<PathBuf> {
        folders(out).into_iter().map(|d| d.join("result.json")).filter(|p| p.is_file()).collect()
    };
    let training =
        |out: &Path| folders(out).iter().any(|d| d.join("child.log").is_file() && !d.join("result.json").is_file());
    while results(&out).len() < 2 || !training(&out) {
        assert!(child.try_wait().unwrap().is_none(), "the search ended before it could be killed");
        assert!(start.elapsed() < Duration::from_secs(120), "no child finished");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before: Vec<(PathBuf, std::time::SystemTime)> =
        results(&out).into_iter().map(|p| (p.clone(), std::fs::metadata(&p).unwrap().modified().unwrap())).collect();
    let mut resumed_args = args.clone();
    resumed_args.push("--resume");
    let resumed = actsearch(&resumed_args, dir.path());
    assert!(resumed.status.success(), "{}", String::from_utf8_lossy(&resumed.stderr));
    for (path, modified) in before {
        assert_eq!(
            std::fs::metadata(&path).unwrap().modified().unwrap(),
            modified,
            "{} was trained again",
            path.display()
        );
    }
    assert_eq!(comparable(rows(&out)), comparable(rows(&dir.path().join("runs/straight"))));
    let read = |p: &str| std::fs::read_to_string(dir.path().join(p)).unwrap();
    let waited = folders(&out).iter().any(|d| {
        std::fs::read_to_string(d.join("child.log")).is_ok_and(|log| log.contains("waiting for another process"))
    });
    assert!(waited, "no resumed child met the lock of a killed one:\n{}", read("runs/killed/log.log"));
    assert_eq!(common::children_lines(&out), common::children_lines(&dir.path().join("runs/straight")));
    assert_eq!(read("runs/killed/top.json"), read("runs/straight/top.json"));
    // Without --resume the folder is not touched.
    let again = actsearch(&args, dir.path());
    common::assert_clean_error(&again, "--resume");
}

/// `--fidelity halving` through the binary: children train rung by rung in their folders
/// (`children/ID/rungK/`), and a search killed with kill -9 while children train resumes to
/// the store of an uninterrupted one (every function's row and every rung's result), with no
/// result trained again.
#[test]
fn a_killed_halving_search_resumes_to_the_same_store() {
    // The surrogate also restores its regressors, Fisher features included, from the store.
    for method in ["random", "surrogate"] {
        killed_halving_search_resumes(method);
    }
}

fn killed_halving_search_resumes(method: &str) {
    let dir = setup();
    let args = |out: &'static str| {
        let mut a = search_args(method, "core1", out, "6");
        a.extend(["--fidelity", "halving", "--min-steps", "1", "--eta", "3"]);
        a
    };
    let straight = actsearch(&args("runs/straight"), dir.path());
    assert!(straight.status.success(), "{}", String::from_utf8_lossy(&straight.stderr));
    let rungs = |out: &Path| common::rung_rows(out, 3);
    let want = rungs(&dir.path().join("runs/straight"));
    assert_eq!(want[0].len(), 6);
    assert!(!want[1].is_empty() && want[2].is_empty(), "{want:?}");
    let log = std::fs::read_to_string(dir.path().join("runs/straight/log.log")).unwrap();
    assert!(log.contains("successive halving at rungs of [1, 3] steps, eta 3") && log.contains("promoted to rung 1"));
    let promoted = &want[1][0];
    let child = dir.path().join(format!("runs/straight/children/{}", promoted.child));
    assert!(child.join("rung0/result.json").is_file() && child.join("rung1/result.json").is_file());
    let stored = rows(&dir.path().join("runs/straight"));
    assert_eq!((stored[promoted.child].steps, stored[promoted.child].reward), (Some(3), promoted.reward));

    let out = dir.path().join("runs/killed");
    let killed = args("runs/killed");
    let mut run = Command::new(env!("CARGO_BIN_EXE_actsearch"))
        .args(&killed)
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let results = |out: &Path| -> Vec<PathBuf> {
        let Ok(children) = std::fs::read_dir(out.join("children")) else { return Vec::new() };
        children
            .flatten()
            .flat_map(|c| std::fs::read_dir(c.path()).into_iter().flatten().flatten())
            .map(|r| r.path().join("result.json"))
            .filter(|p| p.is_file())
            .collect()
    };
    let start = Instant::now();
    while results(&out).len() < 3 {
        assert!(run.try_wait().unwrap().is_none(), "the search ended before it could be killed");
        assert!(start.elapsed() < Duration::from_secs(120), "no child finished");
        std::thread::sleep(Duration::from_millis(10));
    }
    run.kill().unwrap();
    run.wait().unwrap();
    let before: Vec<(PathBuf, std::time::SystemTime)> =
        results(&out).into_iter().map(|p| (p.clone(), std::fs::metadata(&p).unwrap().modified().unwrap())).collect();
    let mut resumed = killed.clone();
    resumed.push("--resume");
    let again = actsearch(&resumed, dir.path());
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    for (path, modified) in before {
        assert_eq!(std::fs::metadata(&path).unwrap().modified().unwrap(), modified, "{} trained again", path.display());
    }
    assert_eq!(comparable(rows(&out)), comparable(stored));
    assert_eq!(rungs(&out), want);
    let read = |p: &str| std::fs::read_to_string(dir.path().join(p)).unwrap();
    assert_eq!(read("runs/killed/top.json"), read("runs/straight/top.json"));
}

#[test]
fn bad_input_is_one_clear_error() {
    let dir = setup();
    let bad = actsearch(&["child", "missing.json"], dir.path());
    common::assert_clean_error(&bad, "cannot read child spec");
    std::fs::write(dir.path().join("bad.json"), "{\"id\": 1}").unwrap();
    common::assert_clean_error(&actsearch(&["child", "bad.json"], dir.path()), "is not a child spec");

    let mut args = search_args("random", "core1", "runs/x", "2");
    args.extend(["--epochs", "3"]);
    common::assert_clean_error(&actsearch(&args, dir.path()), "--epochs only apply to the one-shot methods");
    let args = search_args("random", "core9", "runs/x", "2");
    common::assert_clean_error(&actsearch(&args, dir.path()), "unknown search space 'core9'");
    let mut args = search_args("evolution", "core1", "runs/x", "2");
    args.extend(["--population", "2", "--tournament", "5"]);
    let out = actsearch(&args, dir.path());
    assert!(!out.status.success());
    let one = actsearch(
        &["search", "--method", "grafs", "--budget", "3", "--dataset", "cifar10", "--data-dir", "data"],
        dir.path(),
    );
    common::assert_clean_error(&one, "--budget only apply to the sample-based methods");

    // A child whose data is missing writes a failed result and exits 1.
    let spec = child_spec(4, "nowhere");
    std::fs::create_dir_all(dir.path().join("c4")).unwrap();
    std::fs::write(dir.path().join("c4/spec.json"), spec.to_string()).unwrap();
    let failed = actsearch(&["child", "c4/spec.json"], dir.path());
    assert!(!failed.status.success());
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("c4/result.json")).unwrap()).unwrap();
    assert_eq!(result["status"], "failed");
    assert_eq!(result["reward"], 0.0);

    // A child with a result is not trained again (two jobs never write one folder) ...
    let mut good = spec.clone();
    good["data_dir"] = "data".into();
    std::fs::write(dir.path().join("c4/spec.json"), good.to_string()).unwrap();
    common::assert_clean_error(&actsearch(&["child", "c4/spec.json"], dir.path()), "already holds this child's result");
    // ... and once its result is deleted, the same spec with the data trains and writes an ok result.
    std::fs::remove_file(dir.path().join("c4/result.json")).unwrap();
    let ok = actsearch(&["child", "c4/spec.json"], dir.path());
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("c4/result.json")).unwrap()).unwrap();
    assert_eq!(result["status"], "ok");
}

/// A child's spec is checked as eval checks its flags, through the same code: each bad field
/// is one error line naming the field and the spec, the child exits 1 and writes no result.
/// Counts beyond 10^9 are refused on the command line too, before anything is sized by them.
#[test]
fn child_specs_and_counts_are_checked_as_evals_flags_are() {
    let dir = setup();
    let spec = child_spec(5, "data");
    std::fs::create_dir_all(dir.path().join("c5")).unwrap();
    let cases: [(&str, serde_json::Value, &str); 11] = [
        ("batch_size", 0.into(), "\"batch_size\" in c5/spec.json must be at least 1"),
        ("batch_size", 1.into(), "\"batch_size\" in c5/spec.json must be at least 2"),
        ("lr", (-0.1).into(), "\"lr\" in c5/spec.json must be a positive number, got -0.1"),
        ("momentum", 1.5.into(), "\"momentum\" in c5/spec.json must be in [0, 1)"),
        ("steps", 1_000_000_000_000u64.into(), "\"steps\" in c5/spec.json must be at most 1000000000 (10^9)"),
        ("train_portion", 1.0.into(), "\"train_portion\" in c5/spec.json must be in (0, 1)"),
        ("weight_decay", (-1.0).into(), "\"weight_decay\" in c5/spec.json must be zero or positive"),
        ("formula", "sin(".into(), "\"formula\" in c5/spec.json: "),
        (
            "init",
            serde_json::json!([1.0]),
            "\"init\" in c5/spec.json has 1 values for the 0 parameters of x*sigmoid(x)",
        ),
        ("backend", "tpu".into(), "\"backend\" in c5/spec.json: unknown backend 'tpu'"),
        ("network", "resnet9000".into(), "c5/spec.json is not a child spec: unknown variant `resnet9000`"),
    ];
    for (field, value, message) in cases {
        let mut bad = spec.clone();
        bad[field] = value;
        std::fs::write(dir.path().join("c5/spec.json"), bad.to_string()).unwrap();
        common::assert_clean_error(&actsearch(&["child", "c5/spec.json"], dir.path()), message);
        assert!(!dir.path().join("c5/result.json").exists(), "{field}: a result was written");
    }
    let huge = "1000000000000";
    let mut args = search_args("random", "core1", "runs/huge", "2");
    let at = args.iter().position(|a| *a == "--child-steps").unwrap();
    args[at + 1] = huge;
    common::assert_clean_error(&actsearch(&args, dir.path()), "must be at most 1000000000 (10^9)");
    let args = search_args("random", "core1", "runs/huge", "18446744073709551615");
    common::assert_clean_error(&actsearch(&args, dir.path()), "must be at most 1000000000 (10^9)");
    let mut args = search_args("random", "core1", "runs/huge", "2");
    args.extend(["--budget-steps", "2"]);
    common::assert_clean_error(
        &actsearch(&args, dir.path()),
        "--budget-steps 2 is less than one child's first 3 steps, so nothing could train; give at least 3",
    );
    for (extra, message) in [
        (&["--min-steps", "1"][..], "--min-steps is for --fidelity halving; add it, or drop --min-steps"),
        (&["--fidelity", "halving", "--min-steps", "3"], "--min-steps 3 must be below --child-steps 3"),
        (&["--fidelity", "halving", "--eta", "1"], "--eta 1 must be at least 2"),
    ] {
        let mut args = search_args("random", "core1", "runs/huge", "2");
        args.extend(extra);
        common::assert_clean_error(&actsearch(&args, dir.path()), message);
    }
    let eval = ["eval", "--activation", "relu", "--epochs", huge, "--dataset", "cifar10", "--data-dir", "data"];
    common::assert_clean_error(&actsearch(&eval, dir.path()), "--epochs");
    assert!(!dir.path().join("runs/huge").exists());
}

/// With successive halving a child trains rung by rung in one folder: resumed from its
/// rung-0 checkpoint to rung 1, it equals a child trained straight to rung 1's steps (both
/// under the schedule of all the steps): the same weights, reward and training loss. A rung
/// above 0 without the checkpoint below, or a rung beyond the steps, is one clear error.
#[test]
fn a_child_resumed_to_a_higher_rung_equals_one_trained_straight_there() {
    let dir = setup();
    let spec = |rung: usize, steps: usize| {
        let mut s = child_spec(3, "data");
        s["steps"] = 6.into();
        s["rung"] = serde_json::json!({"index": rung, "steps": steps});
        s
    };
    let write = |path: &str, value: &serde_json::Value| {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, value.to_string()).unwrap();
    };
    let train = |path: &str| {
        let run = actsearch(&["child", path], dir.path());
        assert!(run.status.success(), "{path}: {}", String::from_utf8_lossy(&run.stderr));
        let result: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join(path).with_file_name("result.json")).unwrap(),
        )
        .unwrap();
        result
    };
    write("straight/3/rung0/spec.json", &spec(0, 4));
    let straight = train("straight/3/rung0/spec.json");
    write("rungs/3/rung0/spec.json", &spec(0, 2));
    let low = train("rungs/3/rung0/spec.json");
    write("rungs/3/rung1/spec.json", &spec(1, 4));
    let resumed = train("rungs/3/rung1/spec.json");
    assert_eq!(low["status"], "ok");
    for key in ["reward", "train_loss", "status"] {
        assert_eq!(straight[key], resumed[key], "{key}");
    }
    let weights = |folder: &str| {
        let (tensors, _) =
            actsearch::model::state::read_safetensors(&dir.path().join(folder).join("checkpoint.safetensors")).unwrap();
        tensors.into_iter().collect::<std::collections::BTreeMap<_, _>>()
    };
    assert_eq!(weights("straight/3"), weights("rungs/3"));
    let log = std::fs::read_to_string(dir.path().join("rungs/3/log.log")).unwrap();
    assert!(
        log.contains("for 2 of 6 steps (rung 0)") && log.contains("resumed from the checkpoint of step 2"),
        "{log}"
    );

    write("fresh/3/rung1/spec.json", &spec(1, 4));
    common::assert_clean_error(
        &actsearch(&["child", "fresh/3/rung1/spec.json"], dir.path()),
        "rung 1 resumes the checkpoint of the rung below, and fresh/3 has none",
    );
    write("fresh/3/rung2/spec.json", &spec(2, 7));
    common::assert_clean_error(
        &actsearch(&["child", "fresh/3/rung2/spec.json"], dir.path()),
        "\"rung\" in fresh/3/rung2/spec.json is 7: give a step count from 1 to \"steps\" (6)",
    );
}

/// Children on a ViT (`--child-network vit-micro`): each trains with the ViT recipe (its spec
/// says AdamW, warm-up and clipping), gets a finite reward, keeps its checkpoint under the
/// ViT's `state_dict` names with `--keep-checkpoints`, and the search points at a ViT eval.
#[test]
fn children_train_on_a_vit_with_its_recipe() {
    let dir = setup();
    let mut args = search_args("random", "core1", "runs/vit", "2");
    let at = args.iter().position(|a| *a == "resnet8").unwrap();
    args[at] = "vit-micro";
    args.push("--keep-checkpoints");
    let run = actsearch(&args, dir.path());
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert!(stdout.contains("--network vit-micro"), "{stdout}");
    let out = dir.path().join("runs/vit");
    let trained: Vec<_> = rows(&out).into_iter().filter(|r| r.status == Status::Ok && r.same_as.is_none()).collect();
    assert!(!trained.is_empty());
    for r in trained {
        assert!(r.reward.is_finite() && (0.0..=1.0).contains(&r.reward));
        let child = out.join(format!("children/{}", r.id));
        let spec: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(child.join("spec.json")).unwrap()).unwrap();
        assert_eq!(spec["network"], "vit-micro");
        assert_eq!(spec["optimizer"], "adamw");
        assert_eq!(spec["grad_clip"], 1.0);
        let (tensors, _) = actsearch::model::state::read_safetensors(&child.join("checkpoint.safetensors")).unwrap();
        assert!(tensors.contains_key("blocks.0.attn.qkv.weight"), "{:?}", tensors.keys().collect::<Vec<_>>());
    }
}

/// An uncollected `result.json` is trusted only as the child wrote it: another child's id, a
/// hand-edited reward, a missing checksum, or a reward or time out of range (even with a
/// checksum recomputed to match) are each refused with the path and the fix.
#[test]
fn forged_or_damaged_child_results_are_refused() {
    use actsearch::files::Checksum;
    use actsearch::search::sample::child::{ChildRecipe, ChildResult, Status, read_result, write_result};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("result.json");
    let recipe = |network: &str, floor: f64| -> ChildRecipe {
        serde_json::from_value(serde_json::json!({
            "network": network, "steps": 10, "batch_size": 8, "lr": 0.1, "momentum": 0.9,
            "weight_decay": 0.0, "augment": false, "subset": null, "train_portion": 0.8,
            "reward_floor": floor,
        }))
        .unwrap()
    };
    let images = recipe("resnet8", 0.0);
    let read_result = |path: &std::path::Path, id| read_result(path, id, &images);
    let good = ChildResult { id: 0, reward: 0.4, train_loss: Some(1.5), seconds: 3.0, status: Status::Ok, error: None };
    write_result(&path, &good).unwrap();
    assert_eq!(read_result(&path, 0).unwrap().unwrap().reward, 0.4);
    let value: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    // Rewrites the file with `field` set to `v`, and the checksum recomputed when `sign`.
    let forge = |field: &str, v: serde_json::Value, sign: bool| {
        let mut forged = value.clone();
        forged[field] = v;
        let object = forged.as_object_mut().unwrap();
        object.remove("checksum");
        if sign {
            let sum = Checksum::of(serde_json::to_string(&forged).unwrap().as_bytes());
            forged["checksum"] = sum.into();
        }
        std::fs::write(&path, forged.to_string()).unwrap();
    };
    let refused = |why: &str| {
        let e = read_result(&path, 0).unwrap_err().to_string();
        assert!(e.contains("result.json is not child 0's result") && e.contains(why), "{e}");
        assert!(e.ends_with("delete it, and the child is trained again"), "{e}");
    };
    forge("reward", 0.75.into(), false);
    refused("no checksum");
    let mut edited = value.clone();
    edited["reward"] = 0.75.into();
    std::fs::write(&path, edited.to_string()).unwrap();
    refused("checksum does not match");
    forge("id", 5.into(), true);
    refused("it says child 5");
    forge("reward", 7.5.into(), true);
    refused("reward 7.5 is not a validation accuracy in [0, 1]");
    forge("seconds", (-1.0).into(), true);
    refused("time -1 s is not a duration");
    std::fs::write(&path, "{\"id\": 0").unwrap();
    refused("not JSON");
    std::fs::remove_file(&path).unwrap();
    assert!(read_result(&path, 0).unwrap().is_none());

    // A language model's child: a negated validation loss in [-ln 65, 0], and the floor for a
    // child that did not train.
    let text = recipe("gpt-micro", -(65f64).ln());
    let lm = ChildResult { reward: -1.9, ..good.clone() };
    write_result(&path, &lm).unwrap();
    assert_eq!(actsearch::search::sample::child::read_result(&path, 0, &text).unwrap().unwrap().reward, -1.9);
    for (result, why) in [
        (ChildResult { reward: 0.4, ..good.clone() }, "is not a negated validation loss in [-4.1744, 0]"),
        (ChildResult { reward: -9.0, ..good.clone() }, "is not a negated validation loss"),
        (ChildResult::failed(0, "lost".into(), 1.0, 0.0), "a failed child has reward -4.174"),
    ] {
        write_result(&path, &result).unwrap();
        let e = actsearch::search::sample::child::read_result(&path, 0, &text).unwrap_err().to_string();
        assert!(e.contains(why), "{e}");
    }
    let failed = ChildResult::failed(0, "lost".into(), 1.0, text.reward_floor);
    write_result(&path, &failed).unwrap();
    assert!(actsearch::search::sample::child::read_result(&path, 0, &text).unwrap().is_some());
}

/// `predict`: fit on one search, scored on another search's functions that the first does not
/// hold. The numbers are what the library computes from the two stores (checked here against
/// their JSON), and bad pairs of folders are refused with the reason.
#[test]
fn predict_scores_the_surrogate_on_another_search() {
    let dir = setup();
    for (out, seed) in [("runs/a", "0"), ("runs/b", "1")] {
        let mut args = search_args("random", "core1", out, "8");
        args.extend(["--seed", seed]);
        let run = actsearch(&args, dir.path());
        assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    }
    let predicted = actsearch(&["predict", "runs/a", "--against", "runs/b"], dir.path());
    let said = String::from_utf8_lossy(&predicted.stdout);
    assert!(predicted.status.success(), "{}", String::from_utf8_lossy(&predicted.stderr));
    assert!(said.contains("fit on 8 functions of runs/a") && said.contains("rewards at 3 steps"), "{said}");
    assert!(said.contains("output features:") && said.contains("output + Fisher features:"), "{said}");
    let json = actsearch(&["predict", "runs/a", "--against", "runs/b", "--json"], dir.path());
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let tested = v["tested"].as_array().unwrap();
    let a: Vec<String> = rows(&dir.path().join("runs/a")).into_iter().map(|r| r.formula).collect();
    assert!(
        tested.len() >= 3 && tested.iter().all(|t| !a.contains(&t.get("formula").unwrap().as_str().unwrap().into()))
    );
    // Every tested reward is b's, and the correlation is over all of them.
    let b = rows(&dir.path().join("runs/b"));
    for t in tested {
        let row = b.iter().find(|r| r.formula == t["formula"].as_str().unwrap()).unwrap();
        assert_eq!(t["actual"].as_f64().unwrap(), row.reward);
    }
    if !v["outputs"].is_null() {
        assert_eq!(v["outputs"]["n"].as_u64().unwrap() as usize, tested.len());
    }

    // Another child recipe: refused, naming what differs; not a search; the same step count
    // missing.
    let mut other = search_args("random", "core1", "runs/c", "3");
    let at = other.iter().position(|a| *a == "--child-steps").unwrap();
    other[at + 1] = "2";
    assert!(actsearch(&other, dir.path()).status.success());
    let refused = actsearch(&["predict", "runs/a", "--against", "runs/c"], dir.path());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && err.contains("steps 3 vs 2") && err.contains("do not compare"), "{err}");
    let refused = actsearch(&["predict", "runs/a", "--against", "data"], dir.path());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && err.contains("give the folder of a sample-based search"), "{err}");
    let refused = actsearch(&["predict", "runs/a", "--against", "runs/b", "--steps", "7"], dir.path());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && err.contains("holds rewards at 3 steps"), "{err}");
}
