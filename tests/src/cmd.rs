//! Running iproute2 and friends, failing loudly with the command and its
//! stderr when they fail.

use std::process::{Command, Output};

/// Runs `argv`, panicking with its output if it fails.
pub fn run(argv: &[&str]) -> String {
    let out = output(argv);
    assert!(
        out.status.success(),
        "`{}` failed ({}): {}",
        argv.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `argv` and returns its output, success or not.
#[must_use]
pub fn output(argv: &[&str]) -> Output {
    Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{}`: {e} (is it installed? see scripts/setup.sh)", argv[0]))
}
