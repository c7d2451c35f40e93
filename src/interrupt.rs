//! Ctrl-C and SIGTERM: the first stops gracefully (no new steps; running ones detach at
//! their next safe point, the journal makes a later apply resume); the second exits at
//! once, removing our state lock first.

use std::sync::{Mutex, OnceLock};

use kup_engine::state::StateLock;
use tokio::sync::watch;

static CANCEL: OnceLock<watch::Sender<bool>> = OnceLock::new();
type Release = Box<dyn Fn() + Send>;

static LOCK: Mutex<Option<Release>> = Mutex::new(None);

fn sender() -> &'static watch::Sender<bool> {
    CANCEL.get_or_init(|| watch::channel(false).0)
}

pub fn cancelled() -> watch::Receiver<bool> {
    sender().subscribe()
}

/// Remember the lock so an immediate exit can still release it.
pub fn hold_lock(lock: &StateLock) {
    if let Some(old) = &lock.replaced_stale {
        eprintln!(
            "note: took over the state lock {} left by pid {} ({}), which is no longer running; its journal is resumed if it did not finish",
            old.id, old.pid, old.operation
        );
    }
    *LOCK.lock().unwrap() = Some(Box::new(lock.releaser()));
}

/// Install the handlers. Call once from main inside the runtime.
pub fn install() {
    tokio::spawn(async {
        let mut count = 0;
        loop {
            wait_for_signal().await;
            count += 1;
            if count == 1 {
                eprintln!("\nInterrupt received: stopping after the current safe point. Operations already started keep running at the provider; `kup apply` resumes them. Press Ctrl-C again to exit now.");
                sender().send_replace(true);
            } else {
                if let Some(release) = LOCK.lock().unwrap().take() {
                    release();
                }
                std::process::exit(130);
            }
        }
    });
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// For long-running servers: resolves on the first Ctrl-C or SIGTERM.
pub async fn wait_for_stop() {
    let mut rx = cancelled();
    let _ = rx.wait_for(|c| *c).await;
}
