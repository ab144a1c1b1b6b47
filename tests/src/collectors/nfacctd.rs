//! pmacct's nfacctd, its flows read back from its print plugin.

use std::{
    fmt::Write as _,
    net::IpAddr,
    path::PathBuf,
    process::{Child, Stdio},
};

use super::{signal_and_wait, wait_for_udp_listener};
use crate::netns::Netns;

/// pmacct's nfacctd (Debian package pmacct) on `127.0.0.1:port` in a
/// namespace, aggregating by the pod tuple and the VNI into CSV.
pub struct Nfacctd {
    child: Option<Child>,
    dir: PathBuf,
    /// The primitives file's directory, for a named nfacctd.
    extra_dir: Option<PathBuf>,
}

/// One nfacctd aggregate.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PmacctFlow {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
    pub protocol: String,
    pub vni: u32,
    pub packets: u64,
    pub bytes: u64,
}

impl Nfacctd {
    #[must_use]
    pub fn start(ns: &Netns, port: u16) -> Self {
        Self::start_with(ns, port, "")
    }

    /// As [`Nfacctd::start`], with more configuration lines (`key: value`).
    #[must_use]
    pub fn start_with(ns: &Netns, port: u16, extra: &str) -> Self {
        Self::start_aggregating(ns, port, "src_host, dst_host, src_port, dst_port, proto, vxlan", extra)
    }

    /// nfacctd aggregating also by Antrea's name elements, read as
    /// variable-length strings through `aggregate_primitives`: columns
    /// `src_pod_ns`, `src_pod`, `dst_pod_ns`, `dst_pod`, `src_node`,
    /// `dst_node` in [`Nfacctd::stop_rows`] (custom primitives keep their
    /// case; pmacct's own columns are upper case).
    #[must_use]
    pub fn start_named(ns: &Netns, port: u16) -> Self {
        let dir = std::env::temp_dir().join(format!("{}-nfacctd-{port}-primitives", ns.name()));
        std::fs::create_dir_all(&dir).unwrap();
        let primitives = dir.join("primitives.lst");
        let names = ["src_pod_ns", "src_pod", "dst_pod_ns", "dst_pod", "src_node", "dst_node"];
        let mut lines = String::new();
        for (id, name) in (100..).zip(names) {
            let _ = writeln!(lines, "name={name} field_type=56506:{id} len=vlen semantics=str");
        }
        std::fs::write(&primitives, lines).unwrap();
        let mut nfacctd = Self::start_aggregating(
            ns,
            port,
            &format!("src_host, dst_host, src_port, dst_port, proto, {}", names.join(", ")),
            &format!("aggregate_primitives: {}\n", primitives.display()),
        );
        nfacctd.extra_dir = Some(dir);
        nfacctd
    }

    fn start_aggregating(ns: &Netns, port: u16, aggregate: &str, extra: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("{}-nfacctd-{port}", ns.name()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("nfacctd.conf");
        let csv = dir.join("flows.csv");
        std::fs::write(
            &conf,
            format!(
                "daemonize: false\nnfacctd_ip: 127.0.0.1\nnfacctd_port: {port}\nplugins: print[flows]\n\
                 aggregate[flows]: {aggregate}\n\
                 print_output[flows]: csv\nprint_output_file[flows]: {}\nprint_output_file_append[flows]: true\n\
                 print_refresh_time[flows]: 1\n{extra}",
                csv.display()
            ),
        )
        .unwrap();
        let child = ns
            .command(&["nfacctd", "-f", conf.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nfacctd (Debian package pmacct, installed by scripts/setup.sh)");
        wait_for_udp_listener(ns, port, "nfacctd");
        Self { child: Some(child), dir, extra_dir: None }
    }

    /// Stops nfacctd and returns every row written, each as its columns by
    /// header name.
    #[must_use]
    pub fn stop_rows(mut self) -> Vec<std::collections::BTreeMap<String, String>> {
        let mut child = self.child.take().unwrap();
        signal_and_wait(&mut child, libc::SIGINT);
        let csv = std::fs::read_to_string(self.dir.join("flows.csv")).unwrap_or_default();
        let mut lines = csv.lines();
        let Some(header) = lines.next() else { return Vec::new() };
        let cols: Vec<String> = header.split(',').map(str::to_owned).collect();
        lines
            .filter(|l| *l != header)
            .map(|l| cols.iter().cloned().zip(l.split(',').map(str::to_owned)).collect())
            .collect()
    }

    /// Stops nfacctd (SIGINT purges its cache) and returns every aggregate
    /// row written, in order.
    #[must_use]
    pub fn stop(self) -> Vec<PmacctFlow> {
        self.stop_rows()
            .iter()
            .map(|row| {
                let col = |name: &str| row.get(name).unwrap_or_else(|| panic!("{name} in {row:?}"));
                PmacctFlow {
                    src: col("SRC_IP").parse().unwrap(),
                    dst: col("DST_IP").parse().unwrap(),
                    src_port: col("SRC_PORT").parse().unwrap(),
                    dst_port: col("DST_PORT").parse().unwrap(),
                    protocol: col("PROTOCOL").clone(),
                    vni: col("VXLAN").parse().unwrap(),
                    packets: col("PACKETS").parse().unwrap(),
                    bytes: col("BYTES").parse().unwrap(),
                }
            })
            .collect()
    }
}

impl Drop for Nfacctd {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some(dir) = &self.extra_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
