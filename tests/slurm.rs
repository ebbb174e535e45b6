//! `--executor slurm` against a real Slurm cluster (`scripts/slurm-up` starts one on this
//! machine): a random search through sbatch equals the same search run locally; an eval grid
//! runs as one job array and writes its summary; a child job cancelled with `scancel` is
//! retried; a controller killed with kill -9 resumes, following its jobs, and submits none
//! twice.
//!
//! Without `sbatch` the tests say so and pass, except where `ACTSEARCH_REQUIRE_SLURM` is set
//! (CI sets it, so that they cannot be skipped there).

mod common;

use common::{actsearch, comparable, rows};

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use actsearch::search::sample::child::Status;
use actsearch::search::sample::store::Store;

/// Whether the tests can run; panics where they must (CI).
fn have_slurm(test: &str) -> bool {
    let ok = Command::new("sbatch").arg("--version").output().is_ok_and(|o| o.status.success())
        && Command::new("sinfo").arg("-h").output().is_ok_and(|o| o.status.success());
    if !ok {
        if std::env::var_os("ACTSEARCH_REQUIRE_SLURM").is_some() {
            panic!(
                "{test}: sbatch/sinfo do not work here but ACTSEARCH_REQUIRE_SLURM is set: start the cluster with `bash scripts/slurm-up`"
            );
        }
        eprintln!("{test}: skipped: no Slurm cluster here (start one with `sudo bash scripts/slurm-up`)");
    }
    ok
}

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(&dir.path().join("data"), 12);
    dir
}

/// A random search of core1 on synthetic data: children of `steps` steps of 8 images.
fn search_args(out: &str, budget: &str, steps: &str, executor: &str) -> Vec<String> {
    let mut a: Vec<String> = [
        "search",
        "--method",
        "random",
        "--space",
        "core1",
        "--budget",
        budget,
        "--batch-children",
        budget,
        "--child-network",
        "resnet8",
        "--child-steps",
        steps,
        "--batch-size",
        "8",
        "--dataset",
        "cifar10",
        "--data-dir",
        "data",
        "--threads",
        "1",
        "--seed",
        "3",
        "--out",
        out,
        "--executor",
        executor,
    ]
    .map(String::from)
    .to_vec();
    if executor == "slurm" {
        a.extend(["--slurm-cpus", "1", "--workers", "4"].map(String::from));
    }
    a
}

fn run_ok(args: &[String], cwd: &Path) -> Output {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = actsearch(&args, cwd);
    assert!(out.status.success(), "{:?}\n{}", args, String::from_utf8_lossy(&out.stderr));
    out
}

fn jobs(out: &Path, id: usize) -> Vec<String> {
    Store::open(&out.join("search.db")).unwrap().jobs(id).unwrap()
}

/// `squeue`'s state of a job ("" when it does not know the job).
fn state(job: &str) -> String {
    let out = Command::new("squeue").args(["-h", "-r", "-t", "all", "-j", job, "-o", "%T"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The controller started in the background, its output kept (`piped`) or dropped.
fn spawn(args: &[String], cwd: &Path, piped: bool) -> std::process::Child {
    let out = || if piped { Stdio::piped() } else { Stdio::null() };
    Command::new(env!("CARGO_BIN_EXE_actsearch"))
        .args(args)
        .current_dir(cwd)
        .stdout(out())
        .stderr(out())
        .spawn()
        .unwrap()
}

/// Waits until child 0's (first) job runs; its id.
fn running_child_job(out: &Path) -> String {
    let mut running = String::new();
    wait_for("the child's job to run", Duration::from_secs(120), || {
        let job = out.join("search.db").exists().then(|| jobs(out, 0)).and_then(|j| j.first().cloned());
        match job {
            Some(job) if state(&job) == "RUNNING" => {
                running = job;
                true
            }
            _ => false,
        }
    });
    running
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Successive halving on Slurm: each rung of a child is a job of its own (its spec, batch
/// script and result in `children/ID/rungK/`), promotions are submitted as they are decided,
/// and the rungs equal those of the same search run locally.
#[test]
fn a_halving_search_through_sbatch_equals_the_local_one() {
    if !have_slurm("a_halving_search_through_sbatch_equals_the_local_one") {
        return;
    }
    let dir = setup();
    let cwd = dir.path();
    let halving = |out: &str, executor: &str| {
        let mut a = search_args(out, "6", "3", executor);
        a.extend(["--fidelity", "halving", "--min-steps", "1", "--eta", "3"].map(String::from));
        a
    };
    run_ok(&halving("runs/local", "local"), cwd);
    run_ok(&halving("runs/slurm", "slurm"), cwd);
    let rungs = |out: &Path| common::rung_rows(out, 2);
    let (local, slurm) = (cwd.join("runs/local"), cwd.join("runs/slurm"));
    let want = rungs(&local);
    assert_eq!(want[0].len(), 6);
    assert!(!want[1].is_empty(), "nothing was promoted: {want:?}");
    assert_eq!(rungs(&slurm), want);
    assert_eq!(comparable(rows(&slurm)), comparable(rows(&local)));
    let promoted = want[1][0].child;
    let rung = slurm.join(format!("children/{promoted}/rung1"));
    assert!(rung.join("result.json").is_file() && rung.join("spec.json").is_file(), "{}", rung.display());
}

#[test]
fn a_search_through_sbatch_equals_the_local_one_and_resumes_after_kill_9() {
    if !have_slurm("a_search_through_sbatch_equals_the_local_one") {
        return;
    }
    let dir = setup();
    let cwd = dir.path();
    run_ok(&search_args("runs/local", "4", "3", "local"), cwd);
    run_ok(&search_args("runs/slurm", "4", "3", "slurm"), cwd);
    let (local, slurm) = (cwd.join("runs/local"), cwd.join("runs/slurm"));
    assert_eq!(comparable(rows(&slurm)), comparable(rows(&local)));
    let read = |p: &Path, f: &str| std::fs::read_to_string(p.join(f)).unwrap();
    assert_eq!(common::children_lines(&slurm), common::children_lines(&local));
    assert_eq!(read(&slurm, "top.json"), read(&local, "top.json"));
    // Each trained child ran as one Slurm job from the batch script kept beside its spec.
    for row in rows(&slurm).iter().filter(|r| r.same_as.is_none() && r.status != Status::Rejected) {
        let ids = jobs(&slurm, row.id);
        assert_eq!(ids.len(), 1, "child {}: {ids:?}", row.id);
        assert_eq!(row.job_id.as_deref(), Some(ids[0].as_str()));
        assert_eq!(state(&ids[0]), "COMPLETED", "job {}", ids[0]);
        let script = read(&slurm.join("children").join(row.id.to_string()), "slurm.sh");
        assert!(script.contains("#SBATCH --cpus-per-task=1") && script.contains(" child "), "{script}");
    }

    // kill -9 of the controller while its jobs run, then --resume: it follows the jobs it
    // submitted (no job twice) and ends with the store of the uninterrupted search.
    let args = search_args("runs/killed", "4", "150", "slurm");
    let killed = cwd.join("runs/killed");
    let mut controller = spawn(&args, cwd, false);
    wait_for("two submitted jobs", Duration::from_secs(120), || {
        killed.join("search.db").exists() && (0..4).filter(|&id| !jobs(&killed, id).is_empty()).count() >= 2
    });
    controller.kill().unwrap();
    controller.wait().unwrap();
    let mut resumed = args.clone();
    resumed.push("--resume".into());
    let out = run_ok(&resumed, cwd);
    let log = read(&killed, "log.log");
    assert!(log.contains("following job"), "the resumed search submitted its jobs again:\n{log}");
    for row in rows(&killed).iter().filter(|r| r.same_as.is_none() && r.status != Status::Rejected) {
        assert_eq!(jobs(&killed, row.id).len(), 1, "child {} was submitted twice\n{log}", row.id);
    }
    // The same search run straight through.
    run_ok(&search_args("runs/straight", "4", "150", "local"), cwd);
    assert_eq!(
        comparable(rows(&killed)),
        comparable(rows(&cwd.join("runs/straight"))),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_cancelled_child_job_is_retried() {
    if !have_slurm("a_cancelled_child_job_is_retried") {
        return;
    }
    let dir = setup();
    let cwd = dir.path();
    let args = search_args("runs/cancel", "1", "400", "slurm");
    let out = cwd.join("runs/cancel");
    let controller = spawn(&args, cwd, true);
    let first = running_child_job(&out);
    let cancel = Command::new("scancel").arg(&first).status().unwrap();
    assert!(cancel.success());
    let done = controller.wait_with_output().unwrap();
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    let ids = jobs(&out, 0);
    assert_eq!(ids.len(), 2, "one retry after scancel: {ids:?}");
    assert_eq!(ids[0], first);
    let row = &rows(&out)[0];
    assert_eq!(row.status, Status::Ok, "{row:?}");
    assert_eq!(row.job_id.as_deref(), Some(ids[1].as_str()));
    let log = std::fs::read_to_string(out.join("log.log")).unwrap();
    assert!(log.contains(&format!("slurm job {first} CANCELLED")) && log.contains("resubmitted as job"), "{log}");
}

#[test]
fn an_eval_grid_runs_as_one_job_array() {
    if !have_slurm("an_eval_grid_runs_as_one_job_array") {
        return;
    }
    let dir = setup();
    let cwd = dir.path();
    let args = [
        "eval",
        "--network",
        "resnet8",
        "--activation",
        "relu",
        "--activation",
        "x*sigmoid(b*x)",
        "--seeds",
        "0,1",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--dataset",
        "cifar10",
        "--data-dir",
        "data",
        "--executor",
        "slurm",
        "--slurm-cpus",
        "1",
        "--max-jobs",
        "2",
        "--out",
        "grid",
    ]
    .map(String::from);
    let out = run_ok(&args, cwd);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("paired by seed"), "{stdout}");
    let grid = cwd.join("grid");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(grid.join("summary.json")).unwrap()).unwrap();
    let groups = summary["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2);
    for g in groups {
        assert_eq!(g["seeds"], serde_json::json!([0, 1]), "{g}");
    }
    let swish = groups.iter().find(|g| g["activation"] == "x*sigmoid(b*x)").unwrap();
    assert!(swish["comparison"]["verdict"].is_string(), "{swish}");
    // One array: job ids A_0 .. A_3 of one A, every run finished in its own folder.
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(grid.join("grid.json")).unwrap()).unwrap();
    let ids: Vec<String> =
        state["jobs"].as_object().unwrap().values().map(|v| v[0].as_str().unwrap().to_string()).collect();
    assert_eq!(ids.len(), 4);
    let array = ids[0].split('_').next().unwrap().to_string();
    assert!(ids.iter().all(|id| id.starts_with(&format!("{array}_"))), "{ids:?}");
    assert!(std::fs::read_to_string(grid.join("slurm-array.sh")).unwrap().contains("#SBATCH --job-name="));
    for (network, act) in [("resnet8", "relu"), ("resnet8", "x-sigmoid-b-x-")] {
        for seed in [0, 1] {
            let run: PathBuf = grid.join(network).join(act).join(format!("seed-{seed}"));
            assert!(run.join("model.safetensors").exists(), "{}", run.display());
        }
    }
    // The same grid again is refused without --resume, and with it changes nothing.
    let again: Vec<&str> = args.iter().map(String::as_str).collect();
    common::assert_clean_error(&actsearch(&again, cwd), "--resume");
    let mut resumed = args.to_vec();
    resumed.push("--resume".into());
    let out = run_ok(&resumed, cwd);
    assert!(String::from_utf8_lossy(&out.stderr).contains("4 run(s) already finished"));
}

/// The language tasks run as grids on Slurm too: a gpt-micro grid and a transformer-micro grid
/// (gelu against relu over two seeds each, one job array per grid) judge each group by the
/// task's metric in its direction, and `compare` on both grids keeps them in tables of their own.
#[test]
fn language_grids_run_as_job_arrays_and_keep_their_metrics() {
    if !have_slurm("language_grids_run_as_job_arrays_and_keep_their_metrics") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let text = common::shakespeare(cwd, 300);
    let pairs = common::multi30k(cwd, 60);
    let grid = |network: &str, dataset: &Path, out: &str, extra: &[&str]| {
        let mut args: Vec<String> = [
            "eval",
            "--network",
            network,
            "--activation",
            "gelu",
            "--activation",
            "relu",
            "--seeds",
            "0,1",
            "--steps",
            "4",
            "--eval-interval",
            "2",
            "--batch-size",
            "4",
            "--data-dir",
            "data",
            "--executor",
            "slurm",
            "--slurm-cpus",
            "1",
            "--max-jobs",
            "4",
            "--out",
            out,
            "--dataset",
        ]
        .map(String::from)
        .to_vec();
        args.push(dataset.to_string_lossy().into_owned());
        args.extend(extra.iter().map(|s| s.to_string()));
        run_ok(&args, cwd);
        let summary: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(cwd.join(out).join("summary.json")).unwrap()).unwrap();
        summary["groups"].as_array().unwrap().clone()
    };
    for (groups, metric, higher) in [
        (grid("gpt-micro", &text, "gpt-grid", &[]), "valid_loss", false),
        (grid("transformer-micro", &pairs, "mt-grid", &["--vocab-size", "300"]), "test_bleu", true),
    ] {
        assert_eq!(groups.len(), 2);
        for g in &groups {
            assert_eq!(g["metric"], metric, "{g}");
            assert_eq!(g["higher_is_better"], higher, "{g}");
            assert_eq!(g["seeds"], serde_json::json!([0, 1]), "{g}");
            assert!(g["test_acc"].is_null(), "{g}");
        }
        let relu = groups.iter().find(|g| g["activation"].as_str().is_some_and(|a| a.starts_with("relu"))).unwrap();
        assert!(relu["comparison"].is_object(), "relu is compared with gelu: {relu}");
    }
    let out = actsearch(&["compare", "gpt-grid", "mt-grid"], cwd);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("BLEU") && stdout.contains("loss"), "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("compared 8 finished eval runs"), "{stderr}");
}

/// Ctrl-C cancels the run's jobs and says so; --resume submits the cancelled children afresh
/// (a cancelled job is not followed, and no retry is spent on it) and ends with the store of an
/// uninterrupted search. The run folder's path has a space, which the batch scripts quote.
#[test]
fn ctrl_c_cancels_the_jobs_and_resume_finishes() {
    if !have_slurm("ctrl_c_cancels_the_jobs_and_resume_finishes") {
        return;
    }
    let dir = setup();
    let cwd = dir.path();
    let args = search_args("runs/with space", "2", "400", "slurm");
    let out = cwd.join("runs/with space");
    let controller = spawn(&args, cwd, true);
    let first = running_child_job(&out);
    let sent = Command::new("kill").args(["-INT", &controller.id().to_string()]).status().unwrap();
    assert!(sent.success());
    let stopped = controller.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&stopped.stdout);
    let stderr = String::from_utf8_lossy(&stopped.stderr);
    assert!(stdout.contains("--resume"), "{stdout}\n{stderr}");
    assert!(stderr.contains("cancelled slurm job(s)") && stderr.contains(&first), "{stderr}");
    wait_for("the cancelled job to end", Duration::from_secs(60), || state(&first) == "CANCELLED");

    let mut resumed = args.clone();
    resumed.push("--resume".into());
    run_ok(&resumed, cwd);
    let log = std::fs::read_to_string(out.join("log.log")).unwrap();
    assert!(!log.contains("retry"), "a cancelled job cost a retry:\n{log}");
    let ids = jobs(&out, 0);
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert_eq!(state(&ids[1]), "COMPLETED");
    run_ok(&search_args("runs/straight", "2", "400", "local"), cwd);
    assert_eq!(comparable(rows(&out)), comparable(rows(&cwd.join("runs/straight"))));
}
