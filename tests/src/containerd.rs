//! A real containerd (Debian's 1.6, with runc and the CNI plugins) in a
//! network namespace, on a socket and state directories of its own, and
//! pod sandboxes made through its CRI API as the kubelet makes them: for
//! the `cri` metadata source's tests.
//!
//! What it needs from the host, and gives back: containerd runs in the
//! namespace's network (and the host's mounts, where runc finds the
//! cgroups), so the bridge plugin's `ip_forward` is the namespace's; the
//! IPAM state is in the test's directory; libcni's cache entries in
//! `/var/lib/cni/results` (a path containerd 1.6 does not let one move) are
//! removed with the pods, and any left are removed on drop; shims are
//! stopped with their pods; `/run/containerd` and `/var/lib/cni`, which
//! containerd, runc and libcni make whatever the configuration says, are
//! removed when they did not exist before. The sandbox image is built here from
//! busybox-static, since no registry can be reached.

use std::{
    collections::HashMap,
    net::IpAddr,
    path::{Path, PathBuf},
    process::{Child, Stdio},
    time::{Duration, Instant},
};

use hyper_util::rt::TokioIo;
use k8s_cri::v1::{
    LinuxPodSandboxConfig, PodSandboxConfig, PodSandboxMetadata, PodSandboxStatusRequest, RemovePodSandboxRequest,
    RunPodSandboxRequest, StopPodSandboxRequest, runtime_service_client::RuntimeServiceClient,
};
use tonic::transport::{Channel, Endpoint, Uri};

use crate::{TempDir, cmd, netns::Netns};

/// The sandbox image's name, which the configuration makes containerd use.
const SANDBOX_IMAGE: &str = "vxflow.test/sandbox:1";

/// A pod sandbox the test made.
#[derive(Clone, Debug)]
pub struct Sandbox {
    pub id: String,
    pub ip: IpAddr,
    /// Its process, whose network namespace is the pod's.
    pub pid: u32,
}

/// containerd in a namespace, with a CNI bridge network of two addresses
/// (so a removed pod's address is the next pod's).
pub struct Containerd {
    child: Option<Child>,
    runtime: tokio::runtime::Runtime,
    client: RuntimeServiceClient<Channel>,
    dir: TempDir,
    network: String,
    pods: Vec<String>,
    /// Host directories containerd 1.6 and runc create whatever the
    /// configuration says, which did not exist before: removed on drop.
    created: Vec<&'static str>,
}

/// What containerd 1.6, its shims and runc, and libcni make outside the
/// directories a configuration can name.
const HOST_DIRS: [&str; 2] = ["/run/containerd", "/var/lib/cni"];

impl Containerd {
    /// Starts containerd in `ns`, imports the sandbox image and waits for
    /// its CRI API. Pods get 10.88.0.10 and 10.88.0.11 on the bridge
    /// `vxcri0`, whose address is 10.88.0.1.
    #[must_use]
    pub fn start(ns: &Netns, tag: &str) -> Self {
        let created = HOST_DIRS.into_iter().filter(|d| !Path::new(d).exists()).collect();
        let dir = TempDir::new(tag);
        let network = format!("vxflow-{}", crate::unique_prefix(tag));
        let path = |name: &str| dir.join(name).to_str().unwrap().to_owned();
        std::fs::create_dir_all(dir.join("cni")).unwrap();
        let conflist = format!(
            r#"{{"cniVersion": "1.0.0", "name": "{network}", "plugins": [{{"type": "bridge", "bridge": "vxcri0",
                "isGateway": true, "ipMasq": false, "ipam": {{"type": "host-local", "dataDir": "{}",
                "ranges": [[{{"subnet": "10.88.0.0/24", "rangeStart": "10.88.0.10", "rangeEnd": "10.88.0.11",
                "gateway": "10.88.0.1"}}]]}}}}]}}"#,
            path("ipam")
        );
        std::fs::write(dir.join("cni/10-vxflow.conflist"), conflist).unwrap();
        let config = format!(
            r#"version = 2
root = "{root}"
state = "{state}"
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{SANDBOX_IMAGE}"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{cni}"
"#,
            root = path("root"),
            state = path("state"),
            sock = path("containerd.sock"),
            cni = path("cni"),
        );
        std::fs::write(dir.join("config.toml"), config).unwrap();
        let log = std::fs::File::create(dir.join("containerd.log")).unwrap();
        // Only the network namespace: `ip netns exec` would also give it a
        // sysfs of its own, without the cgroup mounts runc needs.
        let netns = format!("--net=/var/run/netns/{}", ns.name());
        let child = std::process::Command::new("nsenter")
            .args([netns.as_str(), "containerd", "--config", &path("config.toml")])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn containerd (Debian package containerd, installed by scripts/setup.sh)");
        let socket = dir.join("containerd.sock");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !socket.exists() {
            assert!(Instant::now() < deadline, "containerd did not start: {}", log_of(&dir));
            std::thread::sleep(Duration::from_millis(50));
        }
        import_sandbox_image(&dir, &socket);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let client = runtime.block_on(connect(socket.clone()));
        Self { child: Some(child), runtime, client, dir, network, pods: Vec::new(), created }
    }

    /// The CRI socket.
    #[must_use]
    pub fn socket(&self) -> PathBuf {
        self.dir.join("containerd.sock")
    }

    /// Runs a pod sandbox as the kubelet would, with `labels`, and returns
    /// it once its network is up.
    pub fn run_pod(&mut self, name: &str, namespace: &str, uid: &str, labels: &[(&str, &str)]) -> Sandbox {
        let labels: HashMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .chain([
                ("io.kubernetes.pod.name".to_owned(), name.to_owned()),
                ("io.kubernetes.pod.namespace".to_owned(), namespace.to_owned()),
                ("io.kubernetes.pod.uid".to_owned(), uid.to_owned()),
            ])
            .collect();
        let config = PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: name.to_owned(),
                uid: uid.to_owned(),
                namespace: namespace.to_owned(),
                attempt: 0,
            }),
            hostname: name.to_owned(),
            log_directory: self.dir.join("logs").to_str().unwrap().to_owned(),
            labels,
            linux: Some(LinuxPodSandboxConfig::default()),
            ..PodSandboxConfig::default()
        };
        let request = RunPodSandboxRequest { config: Some(config), runtime_handler: String::new() };
        let client = &mut self.client;
        let id = self
            .runtime
            .block_on(client.run_pod_sandbox(request))
            .unwrap_or_else(|e| panic!("RunPodSandbox {name}: {e}\n{}", log_of(&self.dir)))
            .into_inner()
            .pod_sandbox_id;
        self.pods.push(id.clone());
        let request = PodSandboxStatusRequest { pod_sandbox_id: id.clone(), verbose: true };
        let status = self.runtime.block_on(client.pod_sandbox_status(request)).unwrap().into_inner();
        let ip = status.status.and_then(|s| s.network).map(|n| n.ip).unwrap_or_default();
        let info: serde_json::Value =
            serde_json::from_str(status.info.get("info").map_or("{}", String::as_str)).unwrap();
        let pid = u32::try_from(info["pid"].as_u64().expect("the sandbox's pid in its verbose status")).unwrap();
        Sandbox { id, ip: ip.parse().unwrap_or_else(|_| panic!("sandbox {name} has no address: {ip:?}")), pid }
    }

    /// Stops and removes a pod sandbox, freeing its address.
    pub fn remove_pod(&mut self, id: &str) {
        let client = &mut self.client;
        let stop = StopPodSandboxRequest { pod_sandbox_id: id.to_owned() };
        self.runtime.block_on(client.stop_pod_sandbox(stop)).unwrap();
        let remove = RemovePodSandboxRequest { pod_sandbox_id: id.to_owned() };
        self.runtime.block_on(client.remove_pod_sandbox(remove)).unwrap();
        self.pods.retain(|p| p != id);
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        for id in self.pods.clone() {
            let client = &mut self.client;
            let _ =
                self.runtime.block_on(client.stop_pod_sandbox(StopPodSandboxRequest { pod_sandbox_id: id.clone() }));
            let _ = self.runtime.block_on(client.remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: id }));
        }
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on our own child.
            unsafe { libc::kill(i32::try_from(child.id()).unwrap(), libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(5);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        // Shims of pods a failed test left, by the socket they serve.
        let _ = cmd::output(&["pkill", "-f", self.socket().to_str().unwrap()]);
        if let Ok(entries) = std::fs::read_dir("/var/lib/cni/results") {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(&self.network) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        for dir in &self.created {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

async fn connect(socket: PathBuf) -> RuntimeServiceClient<Channel> {
    let channel = Endpoint::from_static("http://[::]:50051")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(socket).await?)) }
        }))
        .await
        .expect("containerd's CRI socket");
    RuntimeServiceClient::new(channel)
}

fn log_of(dir: &TempDir) -> String {
    std::fs::read_to_string(dir.join("containerd.log")).unwrap_or_default()
}

/// Builds the sandbox image (an OCI layout: busybox-static, sleeping) and
/// imports it into containerd's `k8s.io` namespace.
fn import_sandbox_image(dir: &TempDir, socket: &Path) {
    let image = dir.join("image");
    let blobs = image.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let rootfs = dir.join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox"))
        .expect("/bin/busybox (Debian package busybox-static, installed by scripts/setup.sh)");
    let layer = dir.join("layer.tar");
    cmd::run(&["tar", "-C", rootfs.to_str().unwrap(), "-cf", layer.to_str().unwrap(), "bin"]);
    let digest = |p: &Path| cmd::run(&["sha256sum", p.to_str().unwrap()]).split_whitespace().next().unwrap().to_owned();
    let blob = |bytes: &[u8]| {
        let tmp = dir.join("blob");
        std::fs::write(&tmp, bytes).unwrap();
        let d = digest(&tmp);
        std::fs::rename(&tmp, blobs.join(&d)).unwrap();
        (d, bytes.len())
    };
    let layer_bytes = std::fs::read(&layer).unwrap();
    let (layer_digest, layer_size) = blob(&layer_bytes);
    let config = format!(
        r#"{{"architecture": "amd64", "os": "linux", "config": {{"Entrypoint": ["/bin/busybox", "sleep", "2147483647"]}},
            "rootfs": {{"type": "layers", "diff_ids": ["sha256:{layer_digest}"]}}}}"#
    );
    let (config_digest, config_size) = blob(config.as_bytes());
    let manifest = format!(
        r#"{{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:{config_digest}", "size": {config_size}}},
            "layers": [{{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": "sha256:{layer_digest}", "size": {layer_size}}}]}}"#
    );
    let (manifest_digest, manifest_size) = blob(manifest.as_bytes());
    let index = format!(
        r#"{{"schemaVersion": 2, "manifests": [{{"mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": "sha256:{manifest_digest}", "size": {manifest_size},
            "annotations": {{"io.containerd.image.name": "{SANDBOX_IMAGE}", "org.opencontainers.image.ref.name": "1"}}}}]}}"#
    );
    std::fs::write(image.join("index.json"), index).unwrap();
    std::fs::write(image.join("oci-layout"), r#"{"imageLayoutVersion": "1.0.0"}"#).unwrap();
    let archive = dir.join("image.tar");
    cmd::run(&["tar", "-C", image.to_str().unwrap(), "-cf", archive.to_str().unwrap(), "."]);
    cmd::run(&[
        "ctr",
        "--address",
        socket.to_str().unwrap(),
        "--namespace",
        "k8s.io",
        "images",
        "import",
        "--snapshotter",
        "native",
        archive.to_str().unwrap(),
    ]);
}
