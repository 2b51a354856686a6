//! Ctrl-C during `apply` or `drill`: the first one asks the run to stop at the next
//! safe point (between steps, never inside a node's stop/start, a join or a master
//! move), where it says what was done and what was not and releases its lock; a
//! second one stops at once, leaving what a rerun finishes.

use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// Installs the handler (once per process; later calls do nothing).
pub fn install() {
    let _ = ctrlc::set_handler(|| {
        if REQUESTED.swap(true, Ordering::SeqCst) {
            eprintln!("\nstopped at once (second Ctrl-C); rerun `warren apply` to finish");
            std::process::exit(130);
        }
        eprintln!("\nCtrl-C: stopping at the next safe point (press it again to stop at once)");
    });
}

/// Whether Ctrl-C asked the run to stop.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// An error at a safe point when Ctrl-C asked the run to stop.
pub fn checkpoint() -> anyhow::Result<()> {
    if requested() {
        anyhow::bail!("stopped by Ctrl-C at a safe point");
    }
    Ok(())
}
