//! The `file` and `cri` metadata sources given what is not what they
//! expect: a metadata file that is a FIFO, a device, too large, or not
//! UTF-8; a runtime socket that is absent, that hangs up on every
//! connection, or that accepts and never answers. Each is refused or
//! retried in the background; the map answers at once and keeps what it
//! had; nothing blocks a refresh. No root needed.

use std::{
    io::Read as _,
    os::unix::net::UnixListener,
    path::Path,
    time::{Duration, Instant},
};

use vxflow::{
    clock::kernel_ns,
    metadata::{Metadata, MetadataConfig, Resolved},
};
use vxflow_testkit::{TempDir, mkfifo};

fn named(md: &Metadata, ip: &str) -> Option<String> {
    match md.map().resolve(&ip.parse().unwrap(), kernel_ns()) {
        Resolved::Owner(o) => Some(o.name.to_string()),
        _ => None,
    }
}

/// Puts something at a path.
type Make = dyn Fn(&Path);

/// A good file names 10.0.0.7; then the path is replaced by each bad thing
/// in turn: every refresh returns at once, and the name stays.
#[test]
fn a_bad_metadata_file_is_refused_and_the_names_stay() {
    let dir = TempDir::new("mdfile");
    let path = dir.join("names.toml");
    std::fs::write(&path, "[[host]]\naddress = \"10.0.0.7\"\nname = \"billing\"\n").unwrap();
    let config = MetadataConfig { file: Some(path.clone()), ..MetadataConfig::default() };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let _guard = rt.enter();
    let mut md = Metadata::new(&config);
    md.refresh(kernel_ns(), false);
    assert_eq!(named(&md, "10.0.0.7").as_deref(), Some("billing"));

    let replace = |make: &Make| {
        let _ = std::fs::remove_file(&path);
        make(&path);
    };
    let cases: [(&str, &Make); 5] = [
        ("a FIFO", &|p| mkfifo(p)),
        ("a symlink to /dev/zero", &|p| std::os::unix::fs::symlink("/dev/zero", p).unwrap()),
        ("16 MiB and a byte", &|p| {
            let f = std::fs::File::create(p).unwrap();
            f.set_len((16 << 20) + 1).unwrap();
        }),
        ("not UTF-8", &|p| std::fs::write(p, b"[[host]]\naddress = \"\xff\xfe\"\n").unwrap()),
        ("an address that lies", &|p| std::fs::write(p, "[[host]]\naddress = \"10.0.0.300\"\nname = \"x\"\n").unwrap()),
    ];
    for (what, make) in cases {
        replace(make);
        let started = Instant::now();
        md.refresh(kernel_ns(), true);
        assert!(started.elapsed() < Duration::from_secs(1), "{what}: refresh took {:?}", started.elapsed());
        assert_eq!(named(&md, "10.0.0.7").as_deref(), Some("billing"), "{what}: the name given before stays");
    }
}

/// Runs `md` for `rounds` refreshes 20 ms apart, checking none takes long.
async fn run(md: &mut Metadata, rounds: usize, what: &str) {
    for _ in 0..rounds {
        let started = Instant::now();
        md.refresh(kernel_ns(), false);
        assert!(started.elapsed() < Duration::from_millis(200), "{what}: refresh took {:?}", started.elapsed());
        assert_eq!(named(md, "10.244.0.5"), None);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn an_absent_hanging_up_or_silent_runtime_holds_nothing_up() {
    let dir = TempDir::new("mdcri");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();

    // Absent.
    let config = MetadataConfig {
        cri: Some(dir.join("absent.sock")),
        cri_interval: Duration::from_millis(100),
        ..MetadataConfig::default()
    };
    rt.block_on(async { run(&mut Metadata::new(&config), 20, "absent").await });

    // Hangs up on every connection.
    let rude = dir.join("rude.sock");
    let listener = UnixListener::bind(&rude).unwrap();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            drop(conn);
        }
    });
    let config = MetadataConfig { cri: Some(rude), ..config };
    rt.block_on(async { run(&mut Metadata::new(&config), 30, "hangs up").await });
    assert!(accepted.load(std::sync::atomic::Ordering::Relaxed) >= 2, "the source did not retry");

    // Accepts, reads, never answers: the call times out in its task.
    let silent = dir.join("silent.sock");
    let listener = UnixListener::bind(&silent).unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for mut conn in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = conn.set_read_timeout(Some(Duration::from_millis(10)));
            let _ = conn.read(&mut buf);
            held.push(conn);
        }
    });
    let config = MetadataConfig { cri: Some(silent), ..config };
    rt.block_on(async { run(&mut Metadata::new(&config), 30, "silent").await });
}
