//! `warren lab` without root. The lab's own life is checked inside the two lab
//! stories, so the suite builds as few labs as it can: lab_apply inspects fresh hosts
//! as an operator would and grows the lab to six without touching the others;
//! lab_quorum brings a killed lab back and checks that `down` leaves nothing behind.

mod common;

use common::*;
use std::process::Command;

#[test]
fn lab_refuses_without_root_in_one_sentence() {
    let dir = workdir("lab_not_root");
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            env!("CARGO_BIN_EXE_warren"),
            "lab",
            "up",
        ])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("needs root; run it with sudo"), "{err}");
    assert!(!dir.join("lab").exists());
}
