//! `search.db`, the results store of a sample-based search: one SQLite file in the run folder,
//! written only by the controller, in transactions.
//!
//! Table `children`: one row per proposal, in proposal order (`id`): the canonical `formula`,
//! its `fingerprint` (hex), the `tokens`, the `reward`, the `status`
//! (`ok|diverged|rejected|failed`), a `reason`, the `seconds` it trained, the `method`, the
//! `controller_step` that proposed it, `created_at`, the executor's `job_id` where there is
//! one, the `train_loss`, for a function seen before `same_as`, the child that trained it
//! (such a row repeats that child's reward and was not trained again), and the child `steps`
//! the row cost (0 for a rejection or a repeat; empty in a store written before they were
//! recorded, where a trained row cost the recipe's steps). `--budget-steps` sums them.
//!
//! Table `rungs`, with `--fidelity halving`: one row per function and rung it reached (`child`,
//! `rung`, `steps`, `reward`, `status`, `reason`, `seconds`, `train_loss`). The function's
//! row in `children` holds its result at the highest rung it reached (its reward, status and
//! steps) and the seconds of all its rungs.
//!
//! Table `state`: the controller's checkpoint (its iteration and the method's state as JSON),
//! written in the same transaction as the rows of the iteration it follows, so that a
//! resumed search takes the same decisions as an uninterrupted one.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use rusqlite::{Connection, OptionalExtension, params};

use super::child::Status;

/// One row of `children`.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub id: usize,
    pub formula: String,
    pub fingerprint: Option<u64>,
    pub tokens: String,
    pub reward: f64,
    pub status: Status,
    pub reason: Option<String>,
    pub seconds: f64,
    pub method: String,
    pub controller_step: usize,
    pub job_id: Option<String>,
    pub train_loss: Option<f64>,
    pub same_as: Option<usize>,
    /// The child steps this row cost; None in a store from before they were recorded.
    pub steps: Option<usize>,
}

impl Row {
    /// True for a child that was trained (or tried to be): not a rejection, not a repeat.
    pub fn trained(&self) -> bool {
        self.same_as.is_none() && self.status != Status::Rejected
    }

    /// A child that failed (crashed, was killed, could not train): what it would have scored
    /// is unknown, and a resumed search trains it again.
    pub fn lost(&self) -> bool {
        self.same_as.is_none() && self.status == Status::Failed
    }

    /// The child steps this row cost: `recipe_steps` for a trained row of an older store.
    pub fn cost(&self, recipe_steps: usize) -> usize {
        match self.steps {
            Some(steps) => steps,
            None if self.trained() => recipe_steps,
            None => 0,
        }
    }
}

/// One function's result at one rung (table `rungs`).
#[derive(Clone, Debug, PartialEq)]
pub struct RungRow {
    pub child: usize,
    pub rung: usize,
    pub steps: usize,
    pub reward: f64,
    pub status: Status,
    pub reason: Option<String>,
    pub seconds: f64,
    pub train_loss: Option<f64>,
}

/// The controller's checkpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    /// Controller iterations finished.
    pub iterations: usize,
    /// The id of the next proposal.
    pub next_id: usize,
    /// The method's state (weights, optimizer, population, random generator).
    pub method: serde_json::Value,
}

pub struct Store {
    conn: Connection,
    path: PathBuf,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS children (
    id INTEGER PRIMARY KEY,
    formula TEXT NOT NULL,
    fingerprint TEXT,
    tokens TEXT NOT NULL,
    reward REAL NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    seconds REAL NOT NULL,
    method TEXT NOT NULL,
    controller_step INTEGER NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    job_id TEXT,
    train_loss REAL,
    same_as INTEGER,
    steps INTEGER
);
CREATE INDEX IF NOT EXISTS children_fingerprint ON children (fingerprint);
CREATE TABLE IF NOT EXISTS jobs (
    child INTEGER NOT NULL,
    job_id TEXT NOT NULL,
    submitted_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE TABLE IF NOT EXISTS rungs (
    child INTEGER NOT NULL,
    rung INTEGER NOT NULL,
    steps INTEGER NOT NULL,
    reward REAL NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    seconds REAL NOT NULL,
    train_loss REAL,
    PRIMARY KEY (child, rung)
);
CREATE TABLE IF NOT EXISTS state (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
";

const COLUMNS: &str = "id, formula, fingerprint, tokens, reward, status, reason, seconds, method, controller_step, job_id, train_loss, same_as, steps";

impl Store {
    /// Opens (or creates) the store at `path`. A file that is not a search store, or one
    /// damaged, is an error that names it and the fix ([`Store::damaged`]).
    pub fn open(path: &Path) -> Result<Store> {
        let conn =
            Connection::open(path).with_context(|| format!("cannot open the results store {}", path.display()))?;
        let store = Store { conn, path: path.to_path_buf() };
        store.read(|| {
            store.conn.busy_timeout(std::time::Duration::from_secs(30))?;
            store.conn.execute_batch(SCHEMA)?;
            // A store from before the steps were recorded gets their column, empty.
            let has_steps: bool = store
                .conn
                .query_row("SELECT COUNT(*) FROM pragma_table_info('children') WHERE name = 'steps'", [], |r| {
                    r.get::<_, i64>(0)
                })
                .map(|n| n > 0)?;
            if !has_steps {
                store.conn.execute_batch("ALTER TABLE children ADD COLUMN steps INTEGER")?;
            }
            // The whole file is read once: damage anywhere is found now, not mid-search.
            let check: String = store.conn.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
            if check != "ok" {
                bail!("SQLite's check says: {check}");
            }
            Ok(())
        })?;
        Ok(store)
    }

    /// Opens the store at `path` to read it, and nothing else: a missing file, one that is
    /// not a search store, or one written before the steps were recorded (`--resume` upgrades
    /// it) is an error that names it.
    pub fn open_read(path: &Path) -> Result<Store> {
        if !path.is_file() {
            bail!("{} does not exist: give the folder of a sample-based search", path.display());
        }
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)
            .with_context(|| format!("cannot open the results store {}", path.display()))?;
        let store = Store { conn, path: path.to_path_buf() };
        let columns: i64 = store.read(|| {
            store.conn.busy_timeout(std::time::Duration::from_secs(30))?;
            Ok(store.conn.query_row(
                "SELECT COUNT(*) FROM pragma_table_info('children') WHERE name IN ('steps', 'tokens')",
                [],
                |r| r.get(0),
            )?)
        })?;
        if columns < 2 {
            bail!(
                "{} was written before actsearch recorded each child's steps; run its search once with --resume, which upgrades it",
                path.display()
            );
        }
        Ok(store)
    }

    /// The error of a store that cannot be read: its path, and the fix.
    fn damaged(&self) -> String {
        format!(
            "{} is damaged or is not a search store; move it away and rerun the search with --resume \
             (it starts over with the same seed and collects the results in children/ without training them again)",
            self.path.display()
        )
    }

    /// `f`, a read of the store, with [`Store::damaged`] on its error.
    fn read<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        f().with_context(|| self.damaged())
    }

    /// Adds rows (new ids) in one transaction.
    pub fn insert(&mut self, rows: &[Row]) -> Result<()> {
        let tx = self.conn.transaction()?;
        insert_rows(&tx, rows)?;
        tx.commit()?;
        Ok(())
    }

    /// Replaces the row of a child trained again (it had failed), and gives its repeats its
    /// new status and reward, in one transaction.
    pub fn retrained(&mut self, row: &Row) -> Result<()> {
        let tx = self.conn.transaction()?;
        write_rows(&tx, "INSERT OR REPLACE", std::slice::from_ref(row))?;
        tx.execute(
            "UPDATE children SET status = ?1, reward = ?2 WHERE same_as = ?3",
            params![row.status.name(), row.reward, row.id as i64],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Stores a function's result at a rung, in one transaction. At rung 0, `row` is the
    /// function's row in `children` (added, or replaced when it had failed). Above, a result
    /// that is not `failed` becomes the function's: its row and its repeats' rows take its
    /// reward, status and steps, and the row's seconds become those of all its rungs.
    pub fn rung_result(&mut self, rung: &RungRow, row: Option<&Row>) -> Result<()> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT OR REPLACE INTO rungs (child, rung, steps, reward, status, reason, seconds, train_loss) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                rung.child as i64,
                rung.rung as i64,
                rung.steps as i64,
                rung.reward,
                rung.status.name(),
                rung.reason,
                rung.seconds,
                rung.train_loss
            ],
        )
        .with_context(|| format!("cannot store child {}'s rung {}", rung.child, rung.rung))?;
        if let Some(row) = row {
            write_rows(&tx, "INSERT OR REPLACE", std::slice::from_ref(row))?;
        }
        if rung.status != Status::Failed {
            let child = rung.child as i64;
            tx.execute(
                "UPDATE children SET reward = ?1, status = ?2, reason = ?3, steps = ?4, train_loss = ?5, \
                 seconds = (SELECT SUM(seconds) FROM rungs WHERE child = ?6) WHERE id = ?6",
                params![rung.reward, rung.status.name(), rung.reason, rung.steps as i64, rung.train_loss, child],
            )?;
            tx.execute(
                "UPDATE children SET status = ?1, reward = ?2 WHERE same_as = ?3",
                params![rung.status.name(), rung.reward, child],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Every function's result at `rung`, by child id.
    pub fn rung_rows(&self, rung: usize) -> Result<Vec<RungRow>> {
        self.rung_query("WHERE rung = ?1 ORDER BY child", params![rung as i64])
    }

    /// Child `child`'s result at `rung`, if stored.
    pub fn rung_row(&self, child: usize, rung: usize) -> Result<Option<RungRow>> {
        Ok(self.rung_query("WHERE child = ?1 AND rung = ?2", params![child as i64, rung as i64])?.pop())
    }

    /// The rows of `rungs` that `filter` (a WHERE clause and its order) selects.
    fn rung_query(&self, filter: &str, values: impl rusqlite::Params) -> Result<Vec<RungRow>> {
        self.read(|| {
            let mut stmt = self.conn.prepare(&format!(
                "SELECT child, rung, steps, reward, status, reason, seconds, train_loss FROM rungs {filter}"
            ))?;
            let rows = stmt
                .query_map(values, |r| {
                    let status: String = r.get(4)?;
                    Ok((
                        status,
                        RungRow {
                            child: r.get::<_, i64>(0)? as usize,
                            rung: r.get::<_, i64>(1)? as usize,
                            steps: r.get::<_, i64>(2)? as usize,
                            reward: r.get(3)?,
                            status: Status::Failed,
                            reason: r.get(5)?,
                            seconds: r.get(6)?,
                            train_loss: r.get(7)?,
                        },
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.into_iter()
                .map(|(status, row)| match Status::from_name(&status) {
                    Some(status) => Ok(RungRow { status, ..row }),
                    None => bail!("child {} has an unknown status '{status}' at rung {}", row.child, row.rung),
                })
                .collect()
        })
    }

    /// Adds rows and replaces the checkpoint, in one transaction.
    pub fn commit_iteration(&mut self, rows: &[Row], checkpoint: &Checkpoint) -> Result<()> {
        let tx = self.conn.transaction()?;
        insert_rows(&tx, rows)?;
        let value = serde_json::json!({
            "iterations": checkpoint.iterations,
            "next_id": checkpoint.next_id,
            "method": checkpoint.method,
        });
        tx.execute(
            "INSERT INTO state (key, value) VALUES ('controller', ?1) ON CONFLICT(key) DO UPDATE SET value = ?1",
            params![value.to_string()],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The last checkpoint, if any.
    pub fn checkpoint(&self) -> Result<Option<Checkpoint>> {
        self.read(|| {
            let text: Option<String> =
                self.conn.query_row("SELECT value FROM state WHERE key = 'controller'", [], |r| r.get(0)).optional()?;
            let Some(text) = text else { return Ok(None) };
            let v: serde_json::Value = serde_json::from_str(&text).context("its checkpoint row is not JSON")?;
            let field = |name: &str| v[name].as_u64().map(|n| n as usize);
            let (Some(iterations), Some(next_id)) = (field("iterations"), field("next_id")) else {
                bail!("its checkpoint row lacks the iteration count");
            };
            Ok(Some(Checkpoint { iterations, next_id, method: v["method"].clone() }))
        })
    }

    /// Every row, in id order.
    pub fn rows(&self) -> Result<Vec<Row>> {
        self.read(|| {
            let mut stmt = self.conn.prepare(&format!("SELECT {COLUMNS} FROM children ORDER BY id"))?;
            let rows = stmt.query_map([], read_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
            rows.into_iter().collect()
        })
    }

    /// The row with `id`, if stored.
    pub fn row(&self, id: usize) -> Result<Option<Row>> {
        self.read(|| {
            let mut stmt = self.conn.prepare(&format!("SELECT {COLUMNS} FROM children WHERE id = ?1"))?;
            stmt.query_row(params![id as i64], read_row).optional()?.transpose()
        })
    }

    /// The child that trained the function with this fingerprint, if any.
    pub fn trained_with(&self, fingerprint: u64) -> Result<Option<Row>> {
        self.read(|| {
            let mut stmt = self.conn.prepare(&format!(
                "SELECT {COLUMNS} FROM children WHERE fingerprint = ?1 AND same_as IS NULL AND status != 'rejected' ORDER BY id LIMIT 1"
            ))?;
            stmt.query_row(params![hex(fingerprint)], read_row).optional()?.transpose()
        })
    }

    /// Records that child `id` was submitted as `job` (every submission, retries too).
    pub fn set_job(&mut self, id: usize, job: &str) -> Result<()> {
        self.conn.execute("INSERT INTO jobs (child, job_id) VALUES (?1, ?2)", params![id as i64, job])?;
        Ok(())
    }

    /// Every job id recorded for child `id`, in submission order.
    pub fn jobs(&self, id: usize) -> Result<Vec<String>> {
        self.read(|| {
            let mut stmt = self.conn.prepare("SELECT job_id FROM jobs WHERE child = ?1 ORDER BY rowid")?;
            let ids = stmt.query_map(params![id as i64], |r| r.get(0))?.collect::<rusqlite::Result<Vec<String>>>()?;
            Ok(ids)
        })
    }

    /// The last job id recorded for child `id` by [`Store::set_job`].
    pub fn job(&self, id: usize) -> Result<Option<String>> {
        Ok(self.jobs(id)?.pop())
    }
}

fn hex(fingerprint: u64) -> String {
    format!("{fingerprint:016x}")
}

fn insert_rows(tx: &rusqlite::Transaction, rows: &[Row]) -> Result<()> {
    write_rows(tx, "INSERT", rows)
}

/// Writes `rows` with `verb` (`INSERT`, or `INSERT OR REPLACE`).
fn write_rows(tx: &rusqlite::Transaction, verb: &str, rows: &[Row]) -> Result<()> {
    let mut stmt = tx.prepare(&format!(
        "{verb} INTO children ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
    ))?;
    for r in rows {
        stmt.execute(params![
            r.id as i64,
            r.formula,
            r.fingerprint.map(hex),
            r.tokens,
            r.reward,
            r.status.name(),
            r.reason,
            r.seconds,
            r.method,
            r.controller_step as i64,
            r.job_id,
            r.train_loss,
            r.same_as.map(|v| v as i64),
            r.steps.map(|v| v as i64),
        ])
        .with_context(|| format!("cannot store child {}", r.id))?;
    }
    Ok(())
}

fn read_row(r: &rusqlite::Row) -> rusqlite::Result<Result<Row>> {
    let status: String = r.get(5)?;
    let fingerprint: Option<String> = r.get(2)?;
    let id: i64 = r.get(0)?;
    let build = || -> Result<Row> {
        let Some(status) = Status::from_name(&status) else { bail!("child {id} has an unknown status '{status}'") };
        let fingerprint = match fingerprint {
            Some(h) => Some(u64::from_str_radix(&h, 16).with_context(|| format!("child {id}: bad fingerprint '{h}'"))?),
            None => None,
        };
        Ok(Row {
            id: id as usize,
            formula: r.get(1)?,
            fingerprint,
            tokens: r.get(3)?,
            reward: r.get(4)?,
            status,
            reason: r.get(6)?,
            seconds: r.get(7)?,
            method: r.get(8)?,
            controller_step: r.get::<_, i64>(9)? as usize,
            job_id: r.get(10)?,
            train_loss: r.get(11)?,
            same_as: r.get::<_, Option<i64>>(12)?.map(|v| v as usize),
            steps: r.get::<_, Option<i64>>(13)?.map(|v| v as usize),
        })
    };
    Ok(build())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store that is not SQLite, is cut short, or holds a checkpoint row that is not JSON
    /// is an error naming the file and the fix.
    #[test]
    fn a_damaged_store_names_itself_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("search.db");
        let expect = |e: anyhow::Error, why: &str| {
            let text = format!("{e:#}");
            assert!(
                text.starts_with(&format!("{} is damaged or is not a search store; move it away", path.display())),
                "{text}"
            );
            assert!(text.contains(why), "{text}");
        };
        std::fs::write(&path, b"this is not a database, but it is long enough to look like a header......").unwrap();
        expect(Store::open(&path).err().unwrap(), "not a database");

        std::fs::remove_file(&path).unwrap();
        let mut store = Store::open(&path).unwrap();
        let rows: Vec<Row> = (0..200).map(|i| row(i, i as u64, Status::Ok, None)).collect();
        store
            .commit_iteration(&rows, &Checkpoint { iterations: 1, next_id: 200, method: serde_json::json!({}) })
            .unwrap();
        store.conn.execute("UPDATE state SET value = '{broken' WHERE key = 'controller'", []).unwrap();
        expect(store.checkpoint().unwrap_err(), "its checkpoint row is not JSON");
        drop(store);

        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        let e = match Store::open(&path) {
            Err(e) => e,
            Ok(store) => store.rows().unwrap_err(),
        };
        expect(e, "");
    }

    fn row(id: usize, fingerprint: u64, status: Status, same_as: Option<usize>) -> Row {
        Row {
            id,
            formula: format!("f{id}"),
            fingerprint: Some(fingerprint),
            tokens: "identity sigmoid mul".into(),
            reward: 0.25 * id as f64,
            status,
            reason: (status == Status::Rejected).then(|| "it is constant (0) on [-5, 5]".to_string()),
            seconds: 1.5,
            method: "random".into(),
            controller_step: id / 2,
            job_id: None,
            train_loss: Some(2.0),
            same_as,
            steps: Some(if same_as.is_none() && status != Status::Rejected { 100 } else { 0 }),
        }
    }

    #[test]
    fn rows_and_checkpoints_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("search.db");
        let mut store = Store::open(&path).unwrap();
        assert_eq!(store.checkpoint().unwrap(), None);
        let rows = vec![
            row(0, 7, Status::Ok, None),
            row(1, u64::MAX, Status::Rejected, None),
            row(2, 7, Status::Ok, Some(0)),
            row(3, 9, Status::Diverged, None),
        ];
        store.insert(&rows[..2]).unwrap();
        let cp = Checkpoint { iterations: 2, next_id: 4, method: serde_json::json!({"rng": [1, 2]}) };
        store.commit_iteration(&rows[2..], &cp).unwrap();
        drop(store);

        let store = Store::open(&path).unwrap();
        assert_eq!(store.rows().unwrap(), rows);
        assert_eq!(store.checkpoint().unwrap(), Some(cp));
        assert_eq!(store.row(3).unwrap().unwrap().status, Status::Diverged);
        assert_eq!(store.row(4).unwrap(), None);
        // The trained child of a fingerprint: not the repeat, not a rejection.
        assert_eq!(store.trained_with(7).unwrap().unwrap().id, 0);
        assert_eq!(store.trained_with(u64::MAX).unwrap(), None);
        assert!(rows[0].trained() && !rows[1].trained() && !rows[2].trained() && rows[3].trained());
    }

    /// A store written before the steps were recorded opens with their column empty: its
    /// trained rows cost the recipe's steps, the others nothing.
    #[test]
    fn an_older_store_gets_the_steps_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("search.db");
        let old = Connection::open(&path).unwrap();
        old.execute_batch(&SCHEMA.replace(",\n    steps INTEGER", "")).unwrap();
        old.execute(
            "INSERT INTO children (id, formula, fingerprint, tokens, reward, status, seconds, method, controller_step) \
             VALUES (0, 'x', '07', 'identity', 0.5, 'ok', 1.0, 'random', 0), (1, 'x', '07', 'identity', 0.5, 'ok', 0.0, 'random', 0)",
            [],
        )
        .unwrap();
        old.execute("UPDATE children SET same_as = 0 WHERE id = 1", []).unwrap();
        drop(old);
        let mut store = Store::open(&path).unwrap();
        let rows = store.rows().unwrap();
        assert_eq!((rows[0].steps, rows[0].cost(200), rows[1].cost(200)), (None, 200, 0));
        store.insert(&[row(2, 9, Status::Ok, None)]).unwrap();
        assert_eq!(store.row(2).unwrap().unwrap().steps, Some(100));
    }

    #[test]
    fn an_id_is_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("search.db")).unwrap();
        store.insert(&[row(0, 1, Status::Ok, None)]).unwrap();
        let err = store.insert(&[row(1, 2, Status::Ok, None), row(0, 1, Status::Ok, None)]).unwrap_err();
        assert!(format!("{err:#}").contains("cannot store child 0"), "{err:#}");
        // The failed transaction left nothing behind.
        assert_eq!(store.rows().unwrap().len(), 1);
    }

    #[test]
    fn a_file_that_is_not_a_store_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("search.db");
        std::fs::write(&path, "not sqlite at all, just text that is long enough to be read as a header....").unwrap();
        assert!(Store::open(&path).is_err());
    }
}
