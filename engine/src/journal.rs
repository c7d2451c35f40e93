//! The apply journal: JSON Lines beside the state, one fsynced record per event that
//! matters for resuming (run start with the whole plan, step start, provider operation id,
//! step end, run end). A killed apply leaves a run without `run_finished`; the next apply
//! replays it: finished steps are skipped, journaled operations are waited on, not re-issued.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::fsutil::{write_private, PRIVATE_MODE};
use crate::plan::SavedPlan;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "record", rename_all = "snake_case")]
pub enum Record {
    RunStarted {
        run_id: String,
        at: String,
        saved_plan: Box<SavedPlan>,
    },
    StepStarted {
        run_id: String,
        step: String,
        at: String,
    },
    OperationStarted {
        run_id: String,
        step: String,
        operation_id: String,
        /// True when the operation was found already running rather than issued by us.
        #[serde(default)]
        attached: bool,
        at: String,
    },
    StepFinished {
        run_id: String,
        step: String,
        outcome: StepOutcome,
        at: String,
    },
    /// A command a provider ran on a host during a step (kubeadm over SSH).
    HostCommand {
        run_id: String,
        step: String,
        #[serde(flatten)]
        entry: crate::provider::TranscriptEntry,
        at: String,
    },
    RunFinished {
        run_id: String,
        outcome: RunOutcome,
        at: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum StepOutcome {
    Done,
    /// Found already done (postcondition held) without acting.
    AlreadyDone,
    Failed {
        message: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    Completed,
    Failed,
    /// Stopped on request (Ctrl-C); resumable.
    Interrupted,
    /// Everything due is done; a wave waits for its soak or window. Resumable: the next
    /// apply continues the same run.
    Waiting,
}

impl RunOutcome {
    /// A later `kup apply` continues this run.
    pub fn is_resumable(self) -> bool {
        matches!(self, RunOutcome::Interrupted | RunOutcome::Waiting)
    }
}

/// What a journal says about its last run that did not finish.
#[derive(Clone, Debug)]
pub struct UnfinishedRun {
    pub run_id: String,
    pub saved_plan: SavedPlan,
    pub finished: BTreeSet<String>,
    pub failed: BTreeMap<String, String>,
    pub started: BTreeSet<String>,
    pub operations: BTreeMap<String, String>,
    /// When the run first started (RFC 3339).
    pub started_at: String,
    /// When each finished step finished (RFC 3339), for the soak of waves after them.
    pub finished_at: BTreeMap<String, String>,
}

/// Called with the journal's path after every append, once the record is durable here;
/// an error fails the append. A remote backend mirrors the file with it, so a record
/// counts as written only once it is stored with the state.
pub type AppendHook = std::sync::Arc<dyn Fn(&Path) -> io::Result<()> + Send + Sync>;

pub struct Journal {
    path: PathBuf,
    file: File,
    after_append: Option<AppendHook>,
}

impl Journal {
    /// Open for appending. When the last run in the file finished, the file is first
    /// emptied so the journal only ever holds the current run.
    pub fn open(path: &Path) -> io::Result<Journal> {
        // A record cut short by a crash would otherwise be glued to the next one.
        if let Ok(bytes) = fs::read(path) {
            if !bytes.is_empty() && !bytes.ends_with(b"\n") {
                let keep = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
                let f = OpenOptions::new().write(true).open(path)?;
                f.set_len(keep as u64)?;
                f.sync_all()?;
            }
        }
        let records = read(path)?;
        if records.last().is_some_and(
            |r| matches!(r, Record::RunFinished { outcome, .. } if !outcome.is_resumable()),
        ) {
            write_private(path, b"")?;
        }
        let file = {
            use std::os::unix::fs::OpenOptionsExt;
            OpenOptions::new()
                .create(true)
                .append(true)
                .mode(PRIVATE_MODE)
                .open(path)?
        };
        Ok(Journal {
            path: path.to_path_buf(),
            file,
            after_append: None,
        })
    }

    /// Open as [`Journal::open`] does, running `hook` after every append.
    pub fn open_with_hook(path: &Path, hook: AppendHook) -> io::Result<Journal> {
        let mut j = Journal::open(path)?;
        j.after_append = Some(hook);
        Ok(j)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append one record and make it durable before returning.
    pub fn append(&mut self, record: &Record) -> io::Result<()> {
        let line = serde_json::to_string(record).expect("record serializes");
        // An error text can quote what a tool printed; no known secret goes to disk.
        let mut line = crate::redact::redact(&line).into_owned().into_bytes();
        line.push(b'\n');
        self.file.write_all(&line)?;
        self.file.sync_data()?;
        match &self.after_append {
            Some(hook) => hook(&self.path),
            None => Ok(()),
        }
    }
}

/// All complete records. A final line cut short by a crash is ignored; a bad line in the
/// middle is an error, because then the journal cannot be trusted.
pub fn read(path: &Path) -> io::Result<Vec<Record>> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        match serde_json::from_str::<Record>(line) {
            Ok(r) => out.push(r),
            Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => break,
            Err(e) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "journal {} line {} is not a valid record ({e}); it cannot be trusted for resuming. Inspect it, then move it aside to start over",
                        path.display(),
                        i + 1
                    ),
                ))
            }
        }
    }
    Ok(out)
}

/// The last run in `records` if it has not finished (or was interrupted).
pub fn unfinished_run(records: &[Record]) -> Option<UnfinishedRun> {
    let start = records
        .iter()
        .rposition(|r| matches!(r, Record::RunStarted { .. }))?;
    let Record::RunStarted {
        run_id,
        saved_plan,
        at,
    } = &records[start]
    else {
        unreachable!()
    };
    let mut run = UnfinishedRun {
        run_id: run_id.clone(),
        saved_plan: (**saved_plan).clone(),
        finished: BTreeSet::new(),
        failed: BTreeMap::new(),
        started: BTreeSet::new(),
        operations: BTreeMap::new(),
        started_at: at.clone(),
        finished_at: BTreeMap::new(),
    };
    for r in &records[start + 1..] {
        match r {
            Record::StepStarted { step, .. } => {
                run.started.insert(step.clone());
            }
            Record::OperationStarted {
                step, operation_id, ..
            } => {
                run.operations.insert(step.clone(), operation_id.clone());
            }
            Record::StepFinished {
                step, outcome, at, ..
            } => match outcome {
                StepOutcome::Done | StepOutcome::AlreadyDone => {
                    run.finished.insert(step.clone());
                    run.finished_at.insert(step.clone(), at.clone());
                }
                StepOutcome::Failed { message } => {
                    run.failed.insert(step.clone(), message.clone());
                }
            },
            Record::RunFinished { outcome, .. } => {
                if !outcome.is_resumable() {
                    return None;
                }
            }
            Record::HostCommand { .. } => {}
            Record::RunStarted { .. } => unreachable!("rposition found the last one"),
        }
    }
    Some(run)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Desired;
    use crate::plan::Plan;

    fn saved() -> SavedPlan {
        SavedPlan {
            kup_version: "0".into(),
            format_version: 1,
            created_at: "now".into(),
            config_dir: "/x".into(),
            config_hash: "h".into(),
            state_fingerprints: Default::default(),
            desired: Desired::default(),
            plan: Plan::new(vec![], vec![]),
            integrity: String::new(),
        }
        .seal()
    }

    fn started(run: &str) -> Record {
        Record::RunStarted {
            run_id: run.into(),
            at: "t".into(),
            saved_plan: Box::new(saved()),
        }
    }

    #[test]
    fn replays_an_unfinished_run() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("j");
        let mut j = Journal::open(&p).unwrap();
        j.append(&started("r1")).unwrap();
        for rec in [
            Record::StepStarted {
                run_id: "r1".into(),
                step: "a".into(),
                at: "t".into(),
            },
            Record::OperationStarted {
                run_id: "r1".into(),
                step: "a".into(),
                operation_id: "op-1".into(),
                attached: false,
                at: "t".into(),
            },
            Record::StepFinished {
                run_id: "r1".into(),
                step: "a".into(),
                outcome: StepOutcome::Done,
                at: "t".into(),
            },
            Record::StepStarted {
                run_id: "r1".into(),
                step: "b".into(),
                at: "t".into(),
            },
            Record::OperationStarted {
                run_id: "r1".into(),
                step: "b".into(),
                operation_id: "op-2".into(),
                attached: false,
                at: "t".into(),
            },
        ] {
            j.append(&rec).unwrap();
        }
        let run = unfinished_run(&read(&p).unwrap()).unwrap();
        assert_eq!(run.run_id, "r1");
        assert!(run.finished.contains("a"));
        assert!(!run.finished.contains("b"));
        assert_eq!(run.operations["b"], "op-2");
    }

    #[test]
    fn torn_last_line_is_ignored_but_middle_corruption_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("j");
        let good = serde_json::to_string(&started("r1")).unwrap();
        fs::write(&p, format!("{good}\n{{\"record\":\"step_sta")).unwrap();
        assert_eq!(read(&p).unwrap().len(), 1);
        fs::write(&p, format!("{{garbage}}\n{good}\n")).unwrap();
        let e = read(&p).unwrap_err().to_string();
        assert!(e.contains("line 1"), "{e}");
    }

    #[test]
    fn appending_after_a_torn_tail_keeps_the_journal_readable() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("j");
        let good = serde_json::to_string(&started("r1")).unwrap();
        fs::write(&p, format!("{good}\n{{\"record\":\"step_sta")).unwrap();
        let mut j = Journal::open(&p).unwrap();
        j.append(&Record::StepStarted {
            run_id: "r1".into(),
            step: "a".into(),
            at: "t".into(),
        })
        .unwrap();
        let recs = read(&p).unwrap();
        assert_eq!(recs.len(), 2);
        assert!(unfinished_run(&recs).unwrap().started.contains("a"));
    }

    #[test]
    fn finished_run_is_not_replayed_and_is_cleared_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("j");
        let mut j = Journal::open(&p).unwrap();
        j.append(&started("r1")).unwrap();
        j.append(&Record::RunFinished {
            run_id: "r1".into(),
            outcome: RunOutcome::Completed,
            at: "t".into(),
        })
        .unwrap();
        assert!(unfinished_run(&read(&p).unwrap()).is_none());
        drop(j);
        let _j = Journal::open(&p).unwrap();
        assert!(read(&p).unwrap().is_empty());
    }

    #[test]
    fn interrupted_run_is_resumable() {
        let recs = vec![
            started("r1"),
            Record::RunFinished {
                run_id: "r1".into(),
                outcome: RunOutcome::Interrupted,
                at: "t".into(),
            },
        ];
        assert!(unfinished_run(&recs).is_some());
    }
}
