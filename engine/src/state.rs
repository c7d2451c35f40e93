//! `kup.state.json`: what kup last applied and observed per cluster, with lineage and
//! serial like Terraform's state, written atomically, guarded by a lock file.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::fsutil::{write_private, PRIVATE_MODE};
use crate::model::{ActualCluster, ClusterSpec};

/// 2: the state carries a checksum. A version-1 state (none) is still read, and written
/// back as version 2.
pub const STATE_FORMAT_VERSION: u32 = 2;

/// The first format whose states always carry a checksum.
const CHECKSUM_SINCE: u32 = 2;

// Unknown top-level fields are refused: a damaged key (say `checksum` misspelt) must
// not be ignored into an unchecked state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StateFile {
    pub format_version: u32,
    /// Random id given when the state is first created; never changes.
    pub lineage: String,
    /// Incremented on every write.
    pub serial: u64,
    pub kup_version: String,
    /// By cluster address (`cluster.prod`).
    pub clusters: BTreeMap<String, ClusterState>,
    /// Waves of a rollout that may not start yet, and when they may (the last apply
    /// stopped there; the next one continues).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waiting: Vec<crate::executor::WaitingWave>,
    /// SHA-256 of the state as kup wrote it (this field left out), so a hand edit or a
    /// damaged write is noticed instead of trusted. Absent in states from before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ClusterState {
    /// The configuration last applied to this cluster.
    pub desired: ClusterSpec,
    /// What the provider reported after that apply.
    pub observed: ActualCluster,
    pub applied_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_id: Option<String>,
    /// Blue/green node groups: base name → the group currently serving.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub live_colours: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read state file {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("state file {path} is not valid kup state: {source}; restore it from {path}.backup or from version control")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("state file {path} has format version {found}, but this kup understands up to {STATE_FORMAT_VERSION}; upgrade kup")]
    Format { path: PathBuf, found: u32 },
    #[error("cannot write state file {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("state file {path} was changed outside kup (its checksum does not match its content): a hand edit or a damaged write. kup neither uses nor overwrites it. Restore {path}.backup (the state before the last write), or move the file away and run `kup apply -refresh-only` to record what runs now")]
    Checksum { path: PathBuf },
    #[error("state file {path} now holds another state (lineage {on_disk}; this run read lineage {ours}), so kup will not overwrite it; was another configuration's state copied there?")]
    Lineage {
        path: PathBuf,
        on_disk: String,
        ours: String,
    },
    #[error("{message}")]
    Remote { message: String },
    #[error("state file {path} was written by another kup run (serial {on_disk}) after this one read it (serial {ours}); kup will not overwrite newer state. Run the command again")]
    Stale {
        path: PathBuf,
        on_disk: u64,
        ours: u64,
    },
}

impl StateFile {
    pub fn new() -> StateFile {
        StateFile {
            format_version: STATE_FORMAT_VERSION,
            lineage: random_id(16),
            serial: 0,
            kup_version: env!("CARGO_PKG_VERSION").to_string(),
            clusters: BTreeMap::new(),
            waiting: Vec::new(),
            checksum: None,
        }
    }

    /// The checksum of a state document: SHA-256 of its JSON with object keys sorted and
    /// the checksum left out. Computed on the document as written, unknown fields
    /// included, so a later kup that adds fields still agrees with an earlier one.
    fn content_hash(doc: &serde_json::Value) -> String {
        let mut bare = doc.clone();
        if let Some(m) = bare.as_object_mut() {
            m.remove("checksum");
        }
        crate::plan::sha256_hex(&serde_json::to_vec(&bare).expect("JSON serializes"))
    }

    /// Parse `bytes` as the state at `path` and check it is what kup wrote.
    fn parse_checked(path: &Path, bytes: &[u8]) -> Result<StateFile, StateError> {
        let parse_err = |source| StateError::Parse {
            path: path.into(),
            source,
        };
        let doc: serde_json::Value = serde_json::from_slice(bytes).map_err(parse_err)?;
        let state: StateFile = serde_json::from_value(doc.clone()).map_err(parse_err)?;
        if state.format_version > STATE_FORMAT_VERSION {
            return Err(StateError::Format {
                path: path.into(),
                found: state.format_version,
            });
        }
        let intact = match &state.checksum {
            Some(sum) => *sum == Self::content_hash(&doc),
            None => state.format_version < CHECKSUM_SINCE,
        };
        if !intact {
            return Err(StateError::Checksum { path: path.into() });
        }
        Ok(state)
    }

    /// Load the state, or `None` when there is none yet.
    pub fn load(path: &Path) -> Result<Option<StateFile>, StateError> {
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StateError::Read {
                    path: path.into(),
                    source,
                })
            }
        };
        Self::parse_checked(path, &bytes).map(Some)
    }

    /// Write with serial + 1; the previous file is kept as `<path>.backup`. Refuses to
    /// replace a file that is not the state this one was read from (another lineage, a
    /// newer serial, a failed checksum): nothing is overwritten silently.
    pub fn save(&mut self, path: &Path) -> Result<(), StateError> {
        let err = |source| StateError::Write {
            path: path.into(),
            source,
        };
        let old = match fs::read(path) {
            Ok(b) => Some(b),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(err(e)),
        };
        let bytes = self.next_version(path, old.as_deref())?;
        if let Some(old) = &old {
            write_private(&backup_path(path), old).map_err(err)?;
        }
        write_private(path, &bytes).map_err(err)
    }

    /// The bytes that replace `old` (the stored state at `path`, if any): serial + 1, a
    /// fresh checksum. Refuses when `old` is not the state this one was read from.
    fn next_version(&mut self, path: &Path, old: Option<&[u8]>) -> Result<Vec<u8>, StateError> {
        if let Some(old) = old {
            let on_disk = Self::parse_checked(path, old)?;
            if on_disk.lineage != self.lineage {
                return Err(StateError::Lineage {
                    path: path.into(),
                    on_disk: on_disk.lineage,
                    ours: self.lineage.clone(),
                });
            }
            if on_disk.serial > self.serial {
                return Err(StateError::Stale {
                    path: path.into(),
                    on_disk: on_disk.serial,
                    ours: self.serial,
                });
            }
        }
        self.serial += 1;
        self.format_version = STATE_FORMAT_VERSION;
        self.kup_version = env!("CARGO_PKG_VERSION").to_string();
        self.checksum = None;
        self.checksum = Some(Self::content_hash(
            &serde_json::to_value(&*self).expect("state serializes"),
        ));
        let mut bytes = serde_json::to_vec_pretty(self).expect("state serializes");
        bytes.push(b'\n');
        Ok(bytes)
    }
}

impl Default for StateFile {
    fn default() -> Self {
        Self::new()
    }
}

fn backup_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".backup");
    PathBuf::from(s)
}

pub fn lock_path(state: &Path) -> PathBuf {
    let mut s = state.as_os_str().to_owned();
    s.push(".lock");
    PathBuf::from(s)
}

pub fn journal_path(state: &Path) -> PathBuf {
    let mut s = state.as_os_str().to_owned();
    s.push(".journal");
    PathBuf::from(s)
}

/// Who holds the state lock.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LockInfo {
    pub id: String,
    pub operation: String,
    pub who: String,
    pub host: String,
    pub pid: u32,
    pub created: String,
}

impl LockInfo {
    /// This process, about to take the lock for `operation`.
    pub fn ours(operation: &str) -> LockInfo {
        LockInfo {
            id: random_id(8),
            operation: operation.to_string(),
            who: std::env::var("USER").unwrap_or_else(|_| "unknown".into()),
            host: hostname(),
            pid: std::process::id(),
            created: now_rfc3339(),
        }
    }

    /// Whether the holder is a process on this host that no longer exists.
    pub fn holder_is_gone(&self) -> bool {
        if self.host != hostname() {
            return false;
        }
        // SAFETY: kill with signal 0 only checks whether the pid exists.
        let r = unsafe { libc::kill(self.pid as libc::pid_t, 0) };
        r != 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{}", held_message(.0, &format!("lock file: {}", .1.display())))]
    Held(Box<LockInfo>, PathBuf),
    /// Held in a remote backend; the string says where (table and lock id).
    #[error("{}", held_message(.0, .1))]
    HeldRemote(Box<LockInfo>, String),
    #[error("{0}")]
    Remote(String),
    #[error("{0}: the state is not locked")]
    NotLockedRemote(String),
    #[error("cannot create lock file {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("no lock file at {0}: the state is not locked")]
    NotLocked(PathBuf),
    #[error("the state is locked with ID {held}, not {given}; check the ID with the lock holder before forcing")]
    WrongId { held: String, given: String },
}

fn held_message(info: &LockInfo, location: &str) -> String {
    let gone = if info.holder_is_gone() {
        " (that process is no longer running)"
    } else {
        ""
    };
    format!(
        "the state is locked: {} by {} on {} (pid {}{gone}) since {}, lock ID {}.\n  Wait for it to finish, or if it is gone, run: kup force-unlock {}\n  ({location})",
        info.operation,
        info.who,
        info.host,
        info.pid,
        info.created,
        info.id,
        info.id,
    )
}

/// A held state lock; released on drop.
///
/// For a local state the lock is an exclusive `flock(2)` on the lock file, held as long
/// as the process lives: the kernel drops it when the holder exits or is killed, so a
/// dead holder never blocks anyone and no pid probing is needed. The file's content
/// names the holder for error messages. A remote state's lock is an entry in its store,
/// which outlives a killed holder (see [`StateStore::lock`]).
#[derive(Debug)]
pub struct StateLock {
    held: Held,
    pub info: LockInfo,
    /// The holder recorded in a lock file whose process had died without cleaning up.
    pub replaced_stale: Option<LockInfo>,
    /// The open lock file, whose handle keeps the flock (local state).
    _file: Option<std::fs::File>,
}

/// Where a lock is held, to release it (without the file handle, which only the lock
/// itself may keep: a copy in a releaser would keep the flock after the lock is dropped).
#[derive(Clone, Debug)]
enum Held {
    File(PathBuf),
    /// Released through the store on drop.
    Remote(Arc<dyn RemoteState>),
}

impl StateLock {
    /// Take the lock, retrying until `timeout` (zero = one try).
    pub fn acquire(
        state: &Path,
        operation: &str,
        timeout: Duration,
    ) -> Result<StateLock, LockError> {
        use std::io::{Read, Seek};
        use std::os::unix::fs::MetadataExt;
        use std::os::unix::io::AsRawFd;

        let path = lock_path(state);
        let io_err = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(io_err)?;
        }
        let info = LockInfo::ours(operation);
        let deadline = Instant::now() + timeout;
        loop {
            let mut file = {
                use std::os::unix::fs::OpenOptionsExt;
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .mode(PRIVATE_MODE)
                    .open(&path)
                    .map_err(io_err)?
            };
            // SAFETY: flock on a file descriptor we own.
            let locked =
                unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
            if !locked {
                if Instant::now() >= deadline {
                    let held = read_lock(&path).unwrap_or_else(|| LockInfo {
                        id: "(unreadable)".into(),
                        operation: "unknown".into(),
                        who: "unknown".into(),
                        host: "unknown".into(),
                        pid: 0,
                        created: "unknown".into(),
                    });
                    return Err(LockError::Held(Box::new(held), path));
                }
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            // The previous holder may have removed the file between our open and flock:
            // then we locked an orphan and must start again on the file the path names.
            let same = match (file.metadata(), fs::metadata(&path)) {
                (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
                _ => false,
            };
            if !same {
                continue;
            }
            let mut previous = String::new();
            let _ = file.read_to_string(&mut previous);
            let replaced_stale = serde_json::from_str::<LockInfo>(&previous).ok();
            let body = serde_json::to_vec_pretty(&info).expect("lock serializes");
            file.set_len(0)
                .and_then(|_| file.rewind())
                .and_then(|_| file.write_all(&body))
                .and_then(|_| file.sync_all())
                .map_err(io_err)?;
            return Ok(StateLock {
                held: Held::File(path),
                info,
                replaced_stale,
                _file: Some(file),
            });
        }
    }

    pub fn release(self) {
        drop(self)
    }
}

impl StateLock {
    /// Releases this lock if it is still ours, for an exit that skips destructors (a
    /// second Ctrl-C).
    pub fn releaser(&self) -> impl Fn() + Send + 'static {
        let (held, id) = (self.held.clone(), self.info.id.clone());
        move || release(&held, &id)
    }
}

fn release(held: &Held, id: &str) {
    match held {
        // Conditional on our id: a lock force-unlocked and taken by another run stays.
        Held::Remote(remote) => {
            if let Err(e) = remote.unlock(id) {
                eprintln!(
                    "warning: could not release the state lock {id} ({e}); run `kup force-unlock {id}` once no kup runs on this state"
                );
            }
        }
        // Remove the file while still holding the lock, unless force-unlock replaced it;
        // the flock itself goes when the file handle closes.
        Held::File(path) => {
            if read_lock(path).is_some_and(|l| l.id == id) {
                let _ = fs::remove_file(path);
            }
        }
    }
}

impl Drop for StateLock {
    fn drop(&mut self) {
        release(&self.held, &self.info.id);
    }
}

pub fn read_lock(path: &Path) -> Option<LockInfo> {
    fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
}

/// Remove a lock left by a process that died, after checking its ID.
pub fn force_unlock(state: &Path, id: &str) -> Result<LockInfo, LockError> {
    let path = lock_path(state);
    let Some(info) = read_lock(&path) else {
        if path.exists() {
            fs::remove_file(&path).map_err(|source| LockError::Io {
                path: path.clone(),
                source,
            })?;
        }
        return Err(LockError::NotLocked(path));
    };
    if info.id != id {
        return Err(LockError::WrongId {
            held: info.id,
            given: id.to_string(),
        });
    }
    fs::remove_file(&path).map_err(|source| LockError::Io { path, source })?;
    Ok(info)
}

pub fn hostname() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

pub fn random_id(bytes: usize) -> String {
    let v: Vec<u8> = (0..bytes).map(|_| rand::random::<u8>()).collect();
    hex::encode(v)
}

/// An object of a remote state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemoteObject {
    State,
    /// The state before the last write (`KEY.backup`).
    Backup,
    /// The apply journal (`KEY.journal`), mirrored after every record.
    Journal,
}

/// A state kept with its journal and lock somewhere shared (S3 and DynamoDB), implemented
/// outside the engine, which depends on no cloud SDK. Calls block until the store has
/// answered; errors are messages naming the store and what failed.
pub trait RemoteState: Send + Sync + std::fmt::Debug {
    /// The state's name in messages (`s3://bucket/key`).
    fn url(&self) -> String;
    /// Where the lock is, in messages (`DynamoDB table T, LockID bucket/key`).
    fn lock_location(&self) -> String;
    fn get(&self, object: RemoteObject) -> Result<Option<Vec<u8>>, String>;
    /// Store `bytes` whole (a reader sees the old or the new object, never a mix).
    fn put(&self, object: RemoteObject, bytes: &[u8]) -> Result<(), String>;
    /// Take the lock unless someone holds it: `Ok(None)` taken, `Ok(Some(holder))` held.
    fn try_lock(&self, info: &LockInfo) -> Result<Option<LockInfo>, String>;
    fn read_lock(&self) -> Result<Option<LockInfo>, String>;
    /// Remove the lock if its id is `id`; `Ok(false)` when it is not held with that id.
    fn unlock(&self, id: &str) -> Result<bool, String>;
}

/// Where the state, its journal and its lock live: local files, or a remote store with a
/// local working copy of the journal.
#[derive(Clone, Debug)]
pub enum StateStore {
    Local(PathBuf),
    Remote {
        remote: Arc<dyn RemoteState>,
        /// The journal's working copy; the remote copy is the one that counts.
        journal: PathBuf,
    },
}

impl StateStore {
    /// The state's name in messages and errors.
    pub fn describe(&self) -> String {
        match self {
            StateStore::Local(p) => p.display().to_string(),
            StateStore::Remote { remote, .. } => remote.url(),
        }
    }

    pub fn load(&self) -> Result<Option<StateFile>, StateError> {
        match self {
            StateStore::Local(p) => StateFile::load(p),
            StateStore::Remote { remote, .. } => {
                let url = PathBuf::from(remote.url());
                match remote
                    .get(RemoteObject::State)
                    .map_err(|message| StateError::Remote { message })?
                {
                    Some(bytes) => StateFile::parse_checked(&url, &bytes).map(Some),
                    None => Ok(None),
                }
            }
        }
    }

    /// [`StateFile::save`] to wherever the state lives: the stored state is checked first
    /// (lineage, serial, checksum) and kept as the backup before it is replaced.
    pub fn save(&self, state: &mut StateFile) -> Result<(), StateError> {
        match self {
            StateStore::Local(p) => state.save(p),
            StateStore::Remote { remote, .. } => {
                let url = PathBuf::from(remote.url());
                let remote_err = |message| StateError::Remote { message };
                let old = remote.get(RemoteObject::State).map_err(remote_err)?;
                let bytes = state.next_version(&url, old.as_deref())?;
                if let Some(old) = &old {
                    remote.put(RemoteObject::Backup, old).map_err(remote_err)?;
                }
                remote.put(RemoteObject::State, &bytes).map_err(remote_err)
            }
        }
    }

    /// Take the state lock, retrying until `timeout` (zero = one try). For a remote
    /// state the journal's working copy is then replaced by the remote journal, so a run
    /// begun on another machine is resumed here.
    pub fn lock(&self, operation: &str, timeout: Duration) -> Result<StateLock, LockError> {
        let (remote, journal) = match self {
            StateStore::Local(p) => return StateLock::acquire(p, operation, timeout),
            StateStore::Remote { remote, journal } => (remote, journal),
        };
        let info = LockInfo::ours(operation);
        let deadline = Instant::now() + timeout;
        loop {
            match remote.try_lock(&info).map_err(LockError::Remote)? {
                None => break,
                Some(holder) if Instant::now() >= deadline => {
                    return Err(LockError::HeldRemote(
                        Box::new(holder),
                        format!(
                            "{}; a kup that crashed or was killed leaves its lock there: if no kup runs on this state, force-unlock it",
                            remote.lock_location()
                        ),
                    ))
                }
                Some(_) => std::thread::sleep(Duration::from_millis(500)),
            }
        }
        let lock = StateLock {
            held: Held::Remote(remote.clone()),
            info,
            replaced_stale: None,
            _file: None,
        };
        // Released by `lock`'s drop when this fails.
        let refreshed = remote
            .get(RemoteObject::Journal)
            .map_err(LockError::Remote)
            .and_then(|bytes| {
                let io_err = |source| LockError::Io {
                    path: journal.clone(),
                    source,
                };
                if let Some(dir) = journal.parent() {
                    fs::create_dir_all(dir).map_err(io_err)?;
                }
                write_private(journal, &bytes.unwrap_or_default()).map_err(io_err)
            });
        refreshed.map(|()| lock)
    }

    /// Remove a lock left by a run that died, after checking its ID.
    pub fn force_unlock(&self, id: &str) -> Result<LockInfo, LockError> {
        let remote = match self {
            StateStore::Local(p) => return force_unlock(p, id),
            StateStore::Remote { remote, .. } => remote,
        };
        let Some(info) = remote.read_lock().map_err(LockError::Remote)? else {
            return Err(LockError::NotLockedRemote(remote.lock_location()));
        };
        if info.id != id {
            return Err(LockError::WrongId {
                held: info.id,
                given: id.to_string(),
            });
        }
        // Conditional on the id: a lock released and taken again meanwhile stays.
        if !remote.unlock(id).map_err(LockError::Remote)? {
            return Err(LockError::NotLockedRemote(remote.lock_location()));
        }
        Ok(info)
    }

    /// The journal file the executor appends to (for a remote state, its working copy).
    pub fn journal_path(&self) -> PathBuf {
        match self {
            StateStore::Local(p) => journal_path(p),
            StateStore::Remote { journal, .. } => journal.clone(),
        }
    }

    /// Where the journal is kept, in messages.
    pub fn describe_journal(&self) -> String {
        match self {
            StateStore::Local(p) => journal_path(p).display().to_string(),
            StateStore::Remote { remote, .. } => format!("{}.journal", remote.url()),
        }
    }

    /// Open the journal for appending. For a remote state every record is uploaded
    /// (the whole file, one atomic PUT) before the append returns, so a record the
    /// executor has moved past is in the remote journal.
    pub fn open_journal(&self) -> io::Result<crate::journal::Journal> {
        match self {
            StateStore::Local(p) => crate::journal::Journal::open(&journal_path(p)),
            StateStore::Remote { remote, journal } => {
                let remote = remote.clone();
                crate::journal::Journal::open_with_hook(
                    journal,
                    Arc::new(move |path: &Path| {
                        let bytes = fs::read(path)?;
                        remote
                            .put(RemoteObject::Journal, &bytes)
                            .map_err(io::Error::other)
                    }),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_hand_edited_state_is_detected_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("kup.state.json");
        let mut s = StateFile::new();
        s.save(&p).unwrap();
        s.save(&p).unwrap();
        // Still valid JSON and a valid state: only the checksum tells.
        let text = fs::read_to_string(&p).unwrap();
        let edited = text.replace("\"serial\": 2", "\"serial\": 7");
        assert_ne!(text, edited);
        fs::write(&p, &edited).unwrap();
        let e = StateFile::load(&p).unwrap_err();
        assert!(matches!(e, StateError::Checksum { .. }), "{e}");
        assert!(e.to_string().contains(".backup"), "{e}");
        // The copy read before the edit may not write over it.
        let e = s.save(&p).unwrap_err();
        assert!(matches!(e, StateError::Checksum { .. }), "{e}");
        assert_eq!(fs::read_to_string(&p).unwrap(), edited, "left as it was");
        // Reformatting is not an edit: the checksum is over the content.
        fs::write(&p, &text).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        fs::write(&p, serde_json::to_string(&v).unwrap()).unwrap();
        assert_eq!(StateFile::load(&p).unwrap().unwrap().serial, 2);
    }

    #[test]
    fn a_state_from_before_checksums_is_read_and_written_back_with_one() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("kup.state.json");
        let v1 = r#"{"format_version": 1, "lineage": "aaaabbbbccccdddd", "serial": 4, "kup_version": "0.0.9", "clusters": {}}"#;
        fs::write(&p, v1).unwrap();
        let mut s = StateFile::load(&p).unwrap().unwrap();
        s.save(&p).unwrap();
        let back = StateFile::load(&p).unwrap().unwrap();
        assert_eq!(
            (back.format_version, back.serial),
            (STATE_FORMAT_VERSION, 5)
        );
        assert!(back.checksum.is_some());
        // A current state whose checksum went missing (or whose key was damaged) is not.
        let text = fs::read_to_string(&p).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut no_sum = v.clone();
        no_sum.as_object_mut().unwrap().remove("checksum");
        fs::write(&p, no_sum.to_string()).unwrap();
        assert!(matches!(
            StateFile::load(&p),
            Err(StateError::Checksum { .. })
        ));
        fs::write(&p, text.replace("\"checksum\"", "\"checksuM\"")).unwrap();
        assert!(matches!(StateFile::load(&p), Err(StateError::Parse { .. })));
    }

    #[test]
    fn another_lineage_or_a_newer_serial_on_disk_is_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("kup.state.json");
        let mut ours = StateFile::new();
        ours.save(&p).unwrap();
        // Another run read it too and wrote first.
        let mut other = StateFile::load(&p).unwrap().unwrap();
        other.save(&p).unwrap();
        let e = ours.save(&p).unwrap_err();
        assert!(
            matches!(
                e,
                StateError::Stale {
                    on_disk: 2,
                    ours: 1,
                    ..
                }
            ),
            "{e}"
        );
        // A state of another configuration copied over it.
        let mut stranger = StateFile::new();
        fs::remove_file(&p).unwrap();
        stranger.save(&p).unwrap();
        let mut mine = StateFile::load(&p).unwrap().unwrap();
        mine.lineage = "0123456789abcdef".into();
        let e = mine.save(&p).unwrap_err();
        assert!(matches!(e, StateError::Lineage { .. }), "{e}");
        assert_eq!(
            StateFile::load(&p).unwrap().unwrap().lineage,
            stranger.lineage
        );
    }

    #[test]
    fn the_state_its_backup_lock_and_journal_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("kup.state.json");
        let mut s = StateFile::new();
        s.save(&p).unwrap();
        s.save(&p).unwrap();
        assert_eq!(mode(&p), 0o600);
        assert_eq!(mode(&backup_path(&p)), 0o600);
        let lock = StateLock::acquire(&p, "apply", Duration::from_secs(1)).unwrap();
        assert_eq!(mode(&lock_path(&p)), 0o600);
        drop(lock);
        let _j = crate::journal::Journal::open(&journal_path(&p)).unwrap();
        assert_eq!(mode(&journal_path(&p)), 0o600);
    }

    #[test]
    fn save_increments_serial_keeps_lineage_and_backup() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("kup.state.json");
        assert!(StateFile::load(&p).unwrap().is_none());
        let mut s = StateFile::new();
        s.save(&p).unwrap();
        s.save(&p).unwrap();
        let back = StateFile::load(&p).unwrap().unwrap();
        assert_eq!(back.serial, 2);
        assert_eq!(back.lineage, s.lineage);
        let backup: StateFile =
            serde_json::from_slice(&fs::read(backup_path(&p)).unwrap()).unwrap();
        assert_eq!(backup.serial, 1);
    }

    #[test]
    fn corrupt_state_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("kup.state.json");
        fs::write(&p, "{not json").unwrap();
        let e = StateFile::load(&p).unwrap_err().to_string();
        assert!(e.contains("kup.state.json") && e.contains("backup"), "{e}");
    }

    #[test]
    fn second_lock_fails_naming_holder_and_force_unlock_needs_id() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("kup.state.json");
        let first = StateLock::acquire(&p, "apply", Duration::ZERO).unwrap();
        let err = StateLock::acquire(&p, "plan", Duration::from_millis(300)).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(&first.info.id), "{msg}");
        assert!(
            msg.contains("apply") && msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        assert!(matches!(
            force_unlock(&p, "nope"),
            Err(LockError::WrongId { .. })
        ));
        let id = first.info.id.clone();
        force_unlock(&p, &id).unwrap();
        assert!(first.replaced_stale.is_none());
        drop(StateLock::acquire(&p, "x", Duration::ZERO).err());
        // The old holder's drop must not remove a lock someone else now holds.
        let second = StateLock::acquire(&p, "apply", Duration::ZERO).unwrap();
        drop(first);
        assert!(lock_path(&p).exists());
        drop(second);
        assert!(!lock_path(&p).exists());
    }

    #[test]
    fn lock_left_by_a_dead_process_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("kup.state.json");
        // A lock file whose holder is gone: nobody holds the flock.
        let stale = LockInfo {
            id: "old".into(),
            operation: "apply".into(),
            who: "ci".into(),
            host: hostname(),
            pid: 999_999,
            created: now_rfc3339(),
        };
        fs::write(lock_path(&p), serde_json::to_vec(&stale).unwrap()).unwrap();
        let lock = StateLock::acquire(&p, "apply", Duration::ZERO).unwrap();
        assert_eq!(
            lock.replaced_stale.as_ref().map(|l| l.id.as_str()),
            Some("old")
        );
        assert_eq!(read_lock(&lock_path(&p)).unwrap().id, lock.info.id);
    }

    #[test]
    fn racing_acquirers_never_both_hold_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let p = std::sync::Arc::new(dir.path().join("kup.state.json"));
        let holders = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let max_seen = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (p, holders, max_seen) = (p.clone(), holders.clone(), max_seen.clone());
                std::thread::spawn(move || {
                    for _ in 0..20 {
                        let lock =
                            StateLock::acquire(&p, "apply", Duration::from_secs(30)).unwrap();
                        let now = holders.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                        max_seen.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
                        std::thread::sleep(Duration::from_micros(200));
                        holders.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                        drop(lock);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(max_seen.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    /// A remote store in memory, to test what [`StateStore`] does with any backend (the
    /// S3/DynamoDB one is tested against a real server in tests/e2e/remote_state.rs).
    #[derive(Debug, Default)]
    struct Memory {
        objects: std::sync::Mutex<BTreeMap<&'static str, Vec<u8>>>,
        lock: std::sync::Mutex<Option<LockInfo>>,
        journal_puts: std::sync::atomic::AtomicUsize,
    }

    fn name(o: RemoteObject) -> &'static str {
        match o {
            RemoteObject::State => "state",
            RemoteObject::Backup => "state.backup",
            RemoteObject::Journal => "state.journal",
        }
    }

    impl RemoteState for Memory {
        fn url(&self) -> String {
            "mem://state".into()
        }
        fn lock_location(&self) -> String {
            "memory lock".into()
        }
        fn get(&self, o: RemoteObject) -> Result<Option<Vec<u8>>, String> {
            Ok(self.objects.lock().unwrap().get(name(o)).cloned())
        }
        fn put(&self, o: RemoteObject, bytes: &[u8]) -> Result<(), String> {
            if o == RemoteObject::Journal {
                self.journal_puts
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            self.objects.lock().unwrap().insert(name(o), bytes.to_vec());
            Ok(())
        }
        fn try_lock(&self, info: &LockInfo) -> Result<Option<LockInfo>, String> {
            let mut held = self.lock.lock().unwrap();
            match &*held {
                Some(h) => Ok(Some(h.clone())),
                None => {
                    *held = Some(info.clone());
                    Ok(None)
                }
            }
        }
        fn read_lock(&self) -> Result<Option<LockInfo>, String> {
            Ok(self.lock.lock().unwrap().clone())
        }
        fn unlock(&self, id: &str) -> Result<bool, String> {
            let mut held = self.lock.lock().unwrap();
            if held.as_ref().is_some_and(|h| h.id == id) {
                *held = None;
                return Ok(true);
            }
            Ok(false)
        }
    }

    fn remote_store(dir: &Path) -> (Arc<Memory>, StateStore) {
        let memory = Arc::new(Memory::default());
        let store = StateStore::Remote {
            remote: memory.clone(),
            journal: dir.join(".kup").join("remote.journal"),
        };
        (memory, store)
    }

    #[test]
    fn a_remote_state_is_checked_backed_up_and_never_regressed() {
        let dir = tempfile::tempdir().unwrap();
        let (memory, store) = remote_store(dir.path());
        assert!(store.load().unwrap().is_none());
        let mut s = StateFile::new();
        store.save(&mut s).unwrap();
        store.save(&mut s).unwrap();
        assert_eq!(store.load().unwrap().unwrap().serial, 2);
        let backup = memory.get(RemoteObject::Backup).unwrap().unwrap();
        assert_eq!(
            StateFile::parse_checked(Path::new("b"), &backup)
                .unwrap()
                .serial,
            1
        );
        // Another run wrote meanwhile: the older copy may not overwrite it.
        let mut other = store.load().unwrap().unwrap();
        store.save(&mut other).unwrap();
        let e = store.save(&mut s).unwrap_err();
        assert!(
            matches!(
                e,
                StateError::Stale {
                    on_disk: 3,
                    ours: 2,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("mem://state"), "{e}");
        // A damaged object is refused, naming the backup to restore.
        let mut bytes = memory.get(RemoteObject::State).unwrap().unwrap();
        let text = String::from_utf8(bytes.clone())
            .unwrap()
            .replace("\"serial\": 3", "\"serial\": 9");
        bytes = text.into_bytes();
        memory.put(RemoteObject::State, &bytes).unwrap();
        let e = store.load().unwrap_err();
        assert!(matches!(e, StateError::Checksum { .. }), "{e}");
        assert!(e.to_string().contains("mem://state.backup"), "{e}");
    }

    #[test]
    fn a_remote_journal_is_uploaded_on_every_append_and_replaces_the_local_copy_on_lock() {
        use crate::journal::{read, Record};
        let dir = tempfile::tempdir().unwrap();
        let (memory, store) = remote_store(dir.path());
        let step = |s: &str| Record::StepStarted {
            run_id: "r1".into(),
            step: s.into(),
            at: "t".into(),
        };
        let lock = store.lock("apply", Duration::ZERO).unwrap();
        let mut j = store.open_journal().unwrap();
        j.append(&step("a")).unwrap();
        j.append(&step("b")).unwrap();
        assert_eq!(
            memory
                .journal_puts
                .load(std::sync::atomic::Ordering::SeqCst),
            2
        );
        let remote = memory.get(RemoteObject::Journal).unwrap().unwrap();
        assert_eq!(remote, fs::read(store.journal_path()).unwrap());
        drop(j);
        drop(lock);
        assert!(memory.read_lock().unwrap().is_none(), "released on drop");

        // Another machine's working copy (stale or missing) is replaced when it locks.
        let other = tempfile::tempdir().unwrap();
        let there = StateStore::Remote {
            remote: memory.clone(),
            journal: other.path().join(".kup").join("remote.journal"),
        };
        let _lock = there.lock("apply", Duration::ZERO).unwrap();
        assert_eq!(
            read(&there.journal_path()).unwrap(),
            vec![step("a"), step("b")]
        );
        // While held, another taker is told who holds it, and force-unlock checks the ID.
        let e = store.lock("plan", Duration::ZERO).unwrap_err();
        assert!(matches!(e, LockError::HeldRemote(..)), "{e}");
        assert!(
            e.to_string().contains("kup force-unlock") && e.to_string().contains("memory lock"),
            "{e}"
        );
        assert!(matches!(
            store.force_unlock("nope"),
            Err(LockError::WrongId { .. })
        ));
        let id = memory.read_lock().unwrap().unwrap().id;
        assert_eq!(store.force_unlock(&id).unwrap().id, id);
        assert!(matches!(
            store.force_unlock(&id),
            Err(LockError::NotLockedRemote(_))
        ));
    }
}
