//! The `vxflow` command line: help, config checking, and clear errors for bad
//! input. `run` with a missing interface needs root to get past privilege
//! checks, like every test that runs the datapath.

use std::process::{Command, Output};

fn vxflow(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vxflow")).args(args).env("RUST_LOG", "info").output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn help_lists_commands_and_flags() {
    let o = vxflow(&["--help"]);
    assert!(o.status.success());
    let t = text(&o);
    assert!(t.contains("run") && t.contains("check-config"), "{t}");
    let o = vxflow(&["run", "--help"]);
    let t = text(&o);
    for flag in ["--interface", "--vxlan-port", "--active-timeout", "--inactive-timeout", "--max-flows", "--config"] {
        assert!(t.contains(flag), "run --help lacks {flag}:\n{t}");
    }
}

#[test]
fn check_config_accepts_the_shipped_example() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/vxflow.toml");
    let o = vxflow(&["check-config", example]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("OK"));
}

#[test]
fn check_config_names_the_bad_key_and_line() {
    let dir = std::env::temp_dir().join(format!("vxflow-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.toml");
    std::fs::write(&path, "interfaces = [\"eth0\"]\n\n[cache]\nactive_timout = \"30s\"\n").unwrap();
    let o = vxflow(&["check-config", path.to_str().unwrap()]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(o.status.code(), Some(1));
    let t = text(&o);
    assert!(t.contains("active_timout") && t.contains("line 4"), "{t}");
}

#[test]
fn run_without_interfaces_says_how_to_name_one() {
    let o = vxflow(&["run"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("--interface"), "{}", text(&o));
}

/// A named interface that does not exist yet is waited for (a Kubernetes `DaemonSet` may
/// start before the CNI creates `flannel.1`), with a warning naming it.
#[test]
#[ignore = "needs root: scripts/test.sh runs it"]
fn run_waits_for_a_missing_interface_and_says_so() {
    use std::io::Read as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_vxflow"))
        .args(["run", "--interface", "nosuch0", "--no-control", "--no-metrics"])
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    std::thread::sleep(std::time::Duration::from_secs(3));
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(i32::try_from(child.id()).unwrap(), libc::SIGTERM) };
    let status = child.wait().unwrap();
    let t = reader.join().unwrap();
    assert!(status.success(), "{t}");
    assert!(t.contains("interface does not exist (yet)") && t.contains("iface=nosuch0"), "{t}");
    assert!(t.contains("no interface matches; waiting for one to appear"), "{t}");
}

/// Values that once passed validation and then overflowed a clock in the
/// running daemon (exit 101) are refused before anything starts, on one
/// line naming the key.
#[test]
fn run_refuses_durations_that_overflow() {
    let o = vxflow(&[
        "run",
        "--interface",
        "lo",
        "--no-control",
        "--no-metrics",
        "--poll-interval",
        "300000000000y",
        "--inactive-timeout",
        "300000000000y",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let t = text(&o);
    assert_eq!(t.trim_end().lines().count(), 1, "{t}");
    assert!(t.contains("cache.inactive_timeout") || t.contains("kernel.poll_interval"), "{t}");
}
