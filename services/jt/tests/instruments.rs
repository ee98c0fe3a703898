//! `jt instruments` run as the built binary.

#![allow(clippy::expect_used)]

use std::process::{Command, Stdio};

#[test]
fn a_reader_that_stops_early_ends_it_quietly() {
    // `jt instruments | head -1`: the pipe is closed before jt writes (most of) the table.
    let mut child = Command::new(env!("CARGO_BIN_EXE_jt"))
        .arg("instruments")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting the jt binary");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("waiting for jt");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
}

#[test]
fn the_table_lists_every_root() {
    let out = Command::new(env!("CARGO_BIN_EXE_jt"))
        .arg("instruments")
        .output()
        .expect("running jt");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.lines().any(|l| l.starts_with("MNQ ")), "{text}");
}
