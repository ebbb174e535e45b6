//! No result is ever lost or silently wrong: run folders as a user (or an adversary) would
//! treat them. A finished run is never rewritten, two runs never share a folder, kill -9
//! leaves nothing stale, a corrupt checkpoint is named as such.

mod common;

use common::actsearch;

use common::assert_clean_error;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const TINY: [&str; 10] =
    ["--network", "resnet8", "--batch-size", "16", "--subset", "64", "--test-subset", "32", "--train-portion", "0.75"];

fn spawn(args: &[&str], cwd: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_actsearch"))
        .args(args)
        .current_dir(cwd)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start actsearch")
}

fn eval_args<'a>(activation: &'a str, out: &'a str, epochs: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["eval", "--activation", activation, "--out", out, "--epochs", epochs];
    args.extend(TINY);
    args.extend(extra);
    args
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every file of a folder with its bytes (the lock file aside), for before/after comparisons.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_type().unwrap().is_file() && e.file_name() != ".lock")
        .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap()))
        .collect();
    files.sort();
    files
}

/// Issue 11, case 2: a finished run without its checkpoint, resumed with another activation,
/// used to be overwritten. Now nothing in it changes, with or without --resume, and the
/// message does not ask for files to be deleted.
#[test]
fn a_finished_run_is_never_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(&dir.path().join("data"), 16);
    let out = actsearch(&eval_args("relu", "runs/a", "1", &[]), dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let run = dir.path().join("runs/a");
    std::fs::remove_file(run.join("checkpoint.safetensors")).unwrap();
    let before = snapshot(&run);

    let other = actsearch(&eval_args("silu", "runs/a", "1", &["--resume"]), dir.path());
    assert_clean_error(&other, "holds another run");
    assert!(!stderr(&other).contains("delete"), "{}", stderr(&other));
    let again = actsearch(&eval_args("relu", "runs/a", "1", &[]), dir.path());
    assert_clean_error(&again, "holds a finished eval run");
    // The same run with --resume: already finished, reported, nothing rewritten.
    let same = actsearch(&eval_args("relu", "runs/a", "1", &["--resume"]), dir.path());
    assert!(same.status.success(), "{}", stderr(&same));
    assert!(String::from_utf8_lossy(&same.stdout).contains("test accuracy"));
    assert!(snapshot(&run) == before, "the finished run's files changed");
}

/// Issue 11, case 3: two runs into one folder. The second fails at once while the first
/// holds the folder; after kill -9 of the first no lock is left, and --resume finishes it.
#[test]
fn two_runs_never_share_a_folder_and_kill_9_leaves_no_lock() {
    let dir = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(&dir.path().join("data"), 16);
    // Long enough (a few seconds here) that the first run is surely still training when the
    // second and third start; after the kill, --resume trains the rest.
    let args = eval_args("relu", "runs/b", "100", &[]);
    let mut first = spawn(&args, dir.path());
    let checkpoint = dir.path().join("runs/b/checkpoint.safetensors");
    let started = Instant::now();
    while !checkpoint.exists() {
        assert!(first.try_wait().unwrap().is_none(), "the first run ended before its first checkpoint");
        assert!(started.elapsed() < Duration::from_secs(300), "no checkpoint after 300 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = actsearch(&args, dir.path());
    let third = actsearch(&eval_args("silu", "runs/b", "100", &["--resume"]), dir.path());
    let still_running = first.try_wait().unwrap().is_none();
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    assert!(still_running, "the first run finished before the test could check its lock");
    assert_clean_error(&second, "in use by another actsearch process");
    assert_clean_error(&third, "in use by another actsearch process");
    let resumed = actsearch(&[&args[..], &["--resume"]].concat(), dir.path());
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    let errors: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("runs/b/errors.json")).unwrap()).unwrap();
    assert_eq!(errors["test_acc"].as_array().unwrap().len(), 100);
    let log = std::fs::read_to_string(dir.path().join("runs/b/log.log")).unwrap();
    assert!(!log.contains("silu"), "{log}");
}

/// Issue 11, case 5: flipped bytes in a checkpoint are an error that names the file (they
/// used to load and then read as a divergence).
#[test]
fn a_corrupt_checkpoint_is_named_not_trained_on() {
    let dir = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(&dir.path().join("data"), 16);
    let out = actsearch(&eval_args("relu", "runs/c", "1", &[]), dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let run = dir.path().join("runs/c");
    // Make it an unfinished run of 2 epochs whose checkpoint is damaged.
    std::fs::remove_file(run.join("model.safetensors")).unwrap();
    let config = std::fs::read_to_string(run.join("config.json")).unwrap().replace("\"epochs\": 1", "\"epochs\": 2");
    std::fs::write(run.join("config.json"), config).unwrap();
    let path = run.join("checkpoint.safetensors");
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() - 100;
    bytes[at] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let before = snapshot(&run);
    let resumed = actsearch(&eval_args("relu", "runs/c", "2", &["--resume"]), dir.path());
    assert_clean_error(&resumed, "checkpoint.safetensors is corrupt");
    assert!(!stderr(&resumed).contains("--lr"), "{}", stderr(&resumed));
    let after: Vec<(String, Vec<u8>)> = snapshot(&run).into_iter().filter(|(n, _)| n != "log.log").collect();
    let before: Vec<(String, Vec<u8>)> = before.into_iter().filter(|(n, _)| n != "log.log").collect();
    assert!(after == before, "a failed resume changed the run's files");
}

/// `--init-params learned` on a genotype without parameters used to panic.
#[test]
fn learned_params_of_a_parameterless_genotype_train() {
    let dir = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(&dir.path().join("data"), 16);
    let space = actsearch::space::CellSpace::parse("small").unwrap();
    let op = |pos: usize, name: &str| space.positions()[pos].ops.iter().position(|o| o == name).unwrap();
    let genotype = space.genotype(&[op(0, "sinc"), op(1, "sigmoid"), op(2, "add")]).unwrap();
    genotype.save(&dir.path().join("genotype.json")).unwrap();
    let out = actsearch(&eval_args("genotype.json", "runs/d", "1", &["--init-params", "learned"]), dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
}

/// `--subset 100000` of 80 images uses all 80: its config.json records the subset used (none:
/// all images) and keeps the request beside it, so it is one recipe with `--subset 80` and no
/// subset, and `--resume` with the same flags still matches.
#[test]
fn a_clamped_subset_is_recorded_as_used() {
    let dir = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(&dir.path().join("data"), 16); // 80 training, 16 test images
    let base = ["eval", "--activation", "relu", "--network", "resnet8", "--batch-size", "16", "--epochs", "1"];
    let runs: [(&str, &[&str]); 3] = [
        ("runs/huge", &["--subset", "100000", "--test-subset", "100000"]),
        ("runs/exact", &["--subset", "80", "--test-subset", "16"]),
        ("runs/none", &[]),
    ];
    let mut recipes = Vec::new();
    for (out, extra) in runs {
        let args: Vec<&str> = base.iter().copied().chain(["--out", out]).chain(extra.iter().copied()).collect();
        let run = actsearch(&args, dir.path());
        assert!(run.status.success(), "{out}: {}", stderr(&run));
        let config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join(out).join("config.json")).unwrap()).unwrap();
        assert_eq!(
            (config["subset"].clone(), config["test_subset"].clone()),
            (serde_json::Value::Null, serde_json::Value::Null),
            "{out}"
        );
        recipes.push(actsearch::report::runs::Recipe::of_config(&config));
        if out == "runs/huge" {
            assert_eq!(config["requested_subset"], 100000);
            assert_eq!(config["requested_test_subset"], 100000);
            let again: Vec<&str> = args.iter().copied().chain(["--resume"]).collect();
            let resumed = actsearch(&again, dir.path());
            assert!(resumed.status.success(), "{}", stderr(&resumed));
            let other: Vec<&str> =
                args.iter().map(|a| if *a == "100000" { "50" } else { a }).chain(["--resume"]).collect();
            let refused = actsearch(&other, dir.path());
            assert_clean_error(&refused, "subset: 100000 in the run vs 50 now");
        } else if out == "runs/exact" {
            assert_eq!(config["requested_subset"], 80, "{out}: {config}");
        } else {
            assert!(config.get("requested_subset").is_none(), "{out}: {config}");
        }
    }
    assert!(recipes.iter().all(|r| *r == recipes[0]), "{recipes:?}");
    assert_eq!(recipes[0].label, "1 epoch on all images, all test");
}
