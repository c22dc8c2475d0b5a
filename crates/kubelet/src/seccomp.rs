//! `securityContext.seccompProfile` → the container's seccomp filter: the container's field
//! over the pod's; unset is `Unconfined` (the kubelet's default without `SeccompDefault`).
//! `Localhost` profiles are files under `{root-dir}/seccomp` (upstream:
//! `<kubelet-root>/seccomp`), read here so that a missing or bad file is the container's
//! `CreateContainerError` (upstream, containerd reads it in CRI's CreateContainer), in
//! containerd's words. Privileged containers run without a
//! filter, so their profile file is not read (containerd's order).

use std::path::{Path, PathBuf};

use nodelet_api::k8s::api::core::v1::{Container, Pod, SeccompProfile};
use nodelet_runtime::seccomp::{ProfileFile, Seccomp};

/// The profile that applies to `container` of `pod` (no file read yet).
pub fn effective_profile<'a>(pod: &'a Pod, container: &'a Container) -> Option<&'a SeccompProfile> {
    container
        .security_context
        .as_ref()
        .and_then(|sc| sc.seccomp_profile.as_ref())
        .or_else(|| {
            pod.spec
                .as_ref()?
                .security_context
                .as_ref()?
                .seccomp_profile
                .as_ref()
        })
}

/// The filter for `container` of `pod`; `root_dir` is the kubelet's `--root-dir`. The error
/// is the container's waiting message.
pub fn container_seccomp(
    pod: &Pod,
    container: &Container,
    root_dir: &Path,
) -> Result<Seccomp, String> {
    let privileged = container
        .security_context
        .as_ref()
        .and_then(|sc| sc.privileged)
        .unwrap_or(false);
    let Some(profile) = effective_profile(pod, container) else {
        return Ok(Seccomp::Unconfined);
    };
    match profile.type_.as_str() {
        "Unconfined" => Ok(Seccomp::Unconfined),
        "RuntimeDefault" => Ok(Seccomp::RuntimeDefault),
        "Localhost" => {
            let Some(relative) = profile
                .localhost_profile
                .as_deref()
                .filter(|p| !p.is_empty())
            else {
                // upstream's kuberuntime wording
                return Err(
                    "localhostProfile must be set if seccompProfile type is Localhost.".into(),
                );
            };
            if privileged {
                return Ok(Seccomp::Unconfined);
            }
            let path = profile_path(root_dir, relative);
            load(&path).map(|p| Seccomp::Localhost(Box::new(p)))
        }
        other => Err(format!("unknown seccomp profile type: {other}")),
    }
}

/// `{root-dir}/seccomp/<localhostProfile>` (API validation keeps it descending).
pub fn profile_path(root_dir: &Path, relative: &str) -> PathBuf {
    root_dir.join("seccomp").join(relative)
}

fn load(path: &Path) -> Result<ProfileFile, String> {
    let quoted = nodelet_api::field_errors::go_quote(&path.to_string_lossy());
    let bytes = std::fs::read(path).map_err(|e| {
        let reason = match e.kind() {
            std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
            std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
            std::io::ErrorKind::IsADirectory => "is a directory".to_string(),
            _ => e.to_string(),
        };
        format!(
            "cannot load seccomp profile {quoted}: open {}: {reason}",
            path.display()
        )
    })?;
    ProfileFile::parse(&bytes).map_err(|e| {
        format!("cannot load seccomp profile {quoted}: decoding seccomp profile failed: {e}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(
        pod_profile: Option<serde_json::Value>,
        container_sc: serde_json::Value,
    ) -> (Pod, Container) {
        let mut spec =
            json!({"containers": [{"name": "app", "image": "x", "securityContext": container_sc}]});
        if let Some(profile) = pod_profile {
            spec["securityContext"] = json!({"seccompProfile": profile});
        }
        let pod: Pod =
            serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": spec})).unwrap();
        let container = pod.spec.as_ref().unwrap().containers[0].clone();
        (pod, container)
    }

    #[test]
    fn the_containers_profile_wins_over_the_pods_and_unset_is_unconfined() {
        let root = Path::new("/nonexistent-root");
        let (p, c) = pod(None, json!({}));
        assert_eq!(container_seccomp(&p, &c, root), Ok(Seccomp::Unconfined));
        let (p, c) = pod(Some(json!({"type": "RuntimeDefault"})), json!({}));
        assert_eq!(container_seccomp(&p, &c, root), Ok(Seccomp::RuntimeDefault));
        let (p, c) = pod(
            Some(json!({"type": "RuntimeDefault"})),
            json!({"seccompProfile": {"type": "Unconfined"}}),
        );
        assert_eq!(container_seccomp(&p, &c, root), Ok(Seccomp::Unconfined));
    }

    #[test]
    fn localhost_profiles_come_from_the_root_dir() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("seccomp/profiles")).unwrap();
        std::fs::write(
            root.path().join("seccomp/profiles/deny-mkdir.json"),
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}"#,
        )
        .unwrap();
        std::fs::write(root.path().join("seccomp/profiles/bad.json"), "{").unwrap();
        let localhost =
            |file: &str| json!({"seccompProfile": {"type": "Localhost", "localhostProfile": file}});

        let (p, c) = pod(None, localhost("profiles/deny-mkdir.json"));
        assert!(matches!(
            container_seccomp(&p, &c, root.path()),
            Ok(Seccomp::Localhost(_))
        ));

        let (p, c) = pod(None, localhost("profiles/missing.json"));
        let missing = root.path().join("seccomp/profiles/missing.json");
        assert_eq!(
            container_seccomp(&p, &c, root.path()),
            Err(format!(
                "cannot load seccomp profile \"{0}\": open {0}: no such file or directory",
                missing.display()
            ))
        );
        let (p, c) = pod(None, localhost("profiles/bad.json"));
        let err = container_seccomp(&p, &c, root.path()).unwrap_err();
        assert!(
            err.contains("bad.json\": decoding seccomp profile failed: "),
            "{err}"
        );

        // Privileged: no filter, so the file is not read.
        let mut sc = localhost("profiles/missing.json");
        sc["privileged"] = json!(true);
        let (p, c) = pod(None, sc);
        assert_eq!(
            container_seccomp(&p, &c, root.path()),
            Ok(Seccomp::Unconfined)
        );

        let (p, c) = pod(Some(json!({"type": "Localhost"})), json!({}));
        assert_eq!(
            container_seccomp(&p, &c, root.path()),
            Err("localhostProfile must be set if seccompProfile type is Localhost.".into())
        );
    }
}
