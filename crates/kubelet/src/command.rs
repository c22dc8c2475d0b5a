//! What a container runs, where and as whom (spec §5.7): `command`/`args` against the image's
//! `Entrypoint`/`Cmd`, the working directory and the user.
//!
//! Upstream splits this between the kubelet (it expands `$(VAR)` in `command` and `args` and
//! sends them over CRI unchanged) and containerd (it combines them with the image config).
//! We do both here, in that order, so the runtime receives a final argv.

use nodelet_api::k8s::api::core::v1::{Container, Pod};
use nodelet_image::oci::ContainerConfig;
use nodelet_runtime::user::UserRequest;

use crate::expansion::{self, Lookup};

/// Why no process could be described. The first is CRI `CreateContainer`'s error (the
/// container waits with `CreateContainerError`); the second is a configuration error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("no command specified")]
    NoCommand,
    #[error("{field} {value} is not a valid id (0..=4294967295)")]
    InvalidId { field: &'static str, value: i64 },
}

/// `command` and `args` with `$(VAR)` expanded against `kubelet_env` — the kubelet's variable
/// list ([`crate::env::Environment::kubelet`]), which holds every user variable including ones
/// defined after a reference, and the service variables, but not the image's `ENV`.
pub fn expand_command_and_args(
    container: &Container,
    kubelet_env: &[(String, String)],
) -> (Vec<String>, Vec<String>) {
    let expand_all = |list: Option<&Vec<String>>| -> Vec<String> {
        list.into_iter()
            .flatten()
            .map(|s| expansion::expand(s, |name| kubelet_env.get_var(name)))
            .collect()
    };
    (
        expand_all(container.command.as_ref()),
        expand_all(container.args.as_ref()),
    )
}

/// The argv from (already expanded) `command` and `args` and the image config, containerd's
/// rule:
///
/// | command | args | argv |
/// |---|---|---|
/// | – | – | Entrypoint ++ Cmd |
/// | – | A | Entrypoint ++ A |
/// | C | – | C |
/// | C | A | C ++ A |
///
/// An image `Entrypoint` of exactly `[""]` counts as none (how `ENTRYPOINT []` is often
/// recorded). Nothing at all to run is [`CommandError::NoCommand`].
pub fn process_args(
    command: &[String],
    args: &[String],
    image: &ContainerConfig,
) -> Result<Vec<String>, CommandError> {
    let mut argv: Vec<String> = command.to_vec();
    let mut tail: Vec<String> = args.to_vec();
    if command.is_empty() {
        if args.is_empty() {
            tail = image.cmd.clone().unwrap_or_default();
        }
        let entrypoint = image.entrypoint.as_deref().unwrap_or(&[]);
        if !(entrypoint.len() == 1 && entrypoint[0].is_empty()) {
            argv = entrypoint.to_vec();
        }
    }
    argv.extend(tail);
    if argv.is_empty() {
        return Err(CommandError::NoCommand);
    }
    Ok(argv)
}

/// The working directory: the container's `workingDir`, else the image's `WorkingDir`, else
/// `/` (the OCI default).
pub fn working_dir(container: &Container, image: &ContainerConfig) -> String {
    [
        container.working_dir.as_deref(),
        image.working_dir.as_deref(),
    ]
    .into_iter()
    .flatten()
    .find(|d| !d.is_empty())
    .unwrap_or("/")
    .to_owned()
}

/// Who the process runs as, for the runtime to resolve in the image's `/etc/passwd`:
/// `runAsUser`/`runAsGroup` from the container's securityContext, else the pod's (the container
/// wins field by field), over the image's `User`; the pod's `supplementalGroups` are added.
pub fn user_request(
    pod: &Pod,
    container: &Container,
    image: &ContainerConfig,
) -> Result<UserRequest, CommandError> {
    let pod_sc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let sc = container.security_context.as_ref();
    let run_as_user = sc
        .and_then(|s| s.run_as_user)
        .or(pod_sc.and_then(|s| s.run_as_user));
    let run_as_group = sc
        .and_then(|s| s.run_as_group)
        .or(pod_sc.and_then(|s| s.run_as_group));
    let to_id = |field: &'static str, value: i64| {
        u32::try_from(value).map_err(|_| CommandError::InvalidId { field, value })
    };
    Ok(UserRequest {
        image_user: image.user.clone().filter(|u| !u.is_empty()),
        run_as_user: run_as_user.map(|v| to_id("runAsUser", v)).transpose()?,
        run_as_group: run_as_group.map(|v| to_id("runAsGroup", v)).transpose()?,
        supplemental_groups: pod_sc
            .and_then(|s| s.supplemental_groups.as_ref())
            .into_iter()
            .flatten()
            .map(|&g| to_id("supplementalGroups", g))
            .collect::<Result<_, _>>()?,
    })
}

/// `runAsNonRoot` (container over pod), checked before the container is made, with the
/// kubelet's messages (a `CreateContainerConfigError`): a `runAsUser` of 0 breaks it; without
/// `runAsUser` the image's `User` decides: none or uid 0 runs as root, a name cannot be
/// verified.
pub fn verify_run_as_non_root(
    pod: &Pod,
    container: &Container,
    image: &ContainerConfig,
) -> Result<(), String> {
    let pod_sc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let sc = container.security_context.as_ref();
    let non_root = sc
        .and_then(|s| s.run_as_non_root)
        .or(pod_sc.and_then(|s| s.run_as_non_root));
    if non_root != Some(true) {
        return Ok(());
    }
    let meta = &pod.metadata;
    let pod_name = format!(
        "{}_{}({})",
        meta.name.as_deref().unwrap_or_default(),
        meta.namespace.as_deref().unwrap_or_default(),
        meta.uid.as_deref().unwrap_or_default()
    );
    let name = &container.name;
    let run_as_user = sc
        .and_then(|s| s.run_as_user)
        .or(pod_sc.and_then(|s| s.run_as_user));
    if let Some(uid) = run_as_user {
        return match uid {
            0 => Err(format!(
                "container's runAsUser breaks non-root policy (pod: {pod_name:?}, container: {name})"
            )),
            _ => Ok(()),
        };
    }
    let user = image.user.as_deref().unwrap_or_default();
    let user = user.split(':').next().unwrap_or_default();
    match user.parse::<u32>() {
        _ if user.is_empty() => Err(root_message(&pod_name, name)),
        Ok(0) => Err(root_message(&pod_name, name)),
        Ok(_) => Ok(()),
        Err(_) => Err(format!(
            "container has runAsNonRoot and image has non-numeric user ({user}), cannot verify user is non-root (pod: {pod_name:?}, container: {name})"
        )),
    }
}

fn root_message(pod_name: &str, container: &str) -> String {
    format!(
        "container has runAsNonRoot and image will run as root (pod: {pod_name:?}, container: {container})"
    )
}

/// Everything about the process but its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    pub args: Vec<String>,
    pub cwd: String,
    pub user: UserRequest,
}

/// [`expand_command_and_args`], [`process_args`], [`working_dir`] and [`user_request`] at once.
pub fn container_process(
    pod: &Pod,
    container: &Container,
    image: &ContainerConfig,
    kubelet_env: &[(String, String)],
) -> Result<Process, CommandError> {
    let (command, args) = expand_command_and_args(container, kubelet_env);
    Ok(Process {
        args: process_args(&command, &args, image)?,
        cwd: working_dir(container, image),
        user: user_request(pod, container, image)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use nodelet_api::k8s::api::core::v1::{PodSecurityContext, PodSpec, SecurityContext};

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn image(entrypoint: Option<&[&str]>, cmd: Option<&[&str]>) -> ContainerConfig {
        ContainerConfig {
            entrypoint: entrypoint.map(strings),
            cmd: cmd.map(strings),
            ..ContainerConfig::default()
        }
    }

    #[test]
    fn combines_like_containerd() {
        let agnhost = image(Some(&["/agnhost"]), Some(&["pause"]));
        // (command, args, image, argv)
        type Case<'a> = (
            &'a [&'a str],
            &'a [&'a str],
            ContainerConfig,
            Result<&'a [&'a str], CommandError>,
        );
        let cases: Vec<Case> = vec![
            // the e2e "Containers" cases
            (&[], &[], agnhost.clone(), Ok(&["/agnhost", "pause"])),
            (
                &[],
                &["entrypoint-tester", "override", "arguments"],
                agnhost.clone(),
                Ok(&["/agnhost", "entrypoint-tester", "override", "arguments"]),
            ),
            (
                &["/agnhost-2"],
                &["entrypoint-tester"],
                agnhost.clone(),
                Ok(&["/agnhost-2", "entrypoint-tester"]),
            ),
            (&["/agnhost-2"], &[], agnhost.clone(), Ok(&["/agnhost-2"])),
            // image without an entrypoint, and the [""] entrypoint
            (&[], &[], image(None, Some(&["sh"])), Ok(&["sh"])),
            (
                &[],
                &[],
                image(Some(&[""]), Some(&["sh", "-c", "true"])),
                Ok(&["sh", "-c", "true"]),
            ),
            (&[], &["x"], image(Some(&[""]), Some(&["sh"])), Ok(&["x"])),
            (&[], &[], image(Some(&["/init"]), None), Ok(&["/init"])),
            // nothing to run
            (&[], &[], image(None, None), Err(CommandError::NoCommand)),
            (
                &[],
                &[],
                image(Some(&[""]), Some(&[])),
                Err(CommandError::NoCommand),
            ),
        ];
        for (command, args, img, want) in cases {
            let got = process_args(&strings(command), &strings(args), &img);
            assert_eq!(got, want.map(strings), "{command:?} {args:?}");
        }
        assert_eq!(CommandError::NoCommand.to_string(), "no command specified");
    }

    #[test]
    fn expands_against_the_kubelet_env() {
        let env = vec![
            ("TEST_VAR".to_owned(), "test-value".to_owned()),
            ("LATER".to_owned(), "later".to_owned()),
        ];
        let c = Container {
            command: Some(strings(&[
                "sh",
                "-c",
                "TEST_VAR=wrong echo \"$(TEST_VAR)\"",
            ])),
            args: Some(strings(&["$(LATER)", "$$(TEST_VAR)", "$(PATH)"])),
            ..Container::default()
        };
        let (command, args) = expand_command_and_args(&c, &env);
        assert_eq!(
            command,
            strings(&["sh", "-c", "TEST_VAR=wrong echo \"test-value\""])
        );
        assert_eq!(args, strings(&["later", "$(TEST_VAR)", "$(PATH)"]));
    }

    #[test]
    fn working_dir_and_user() {
        let img = ContainerConfig {
            working_dir: Some("/srv".into()),
            user: Some("nobody".into()),
            ..ContainerConfig::default()
        };
        let mut c = Container::default();
        assert_eq!(working_dir(&c, &img), "/srv");
        assert_eq!(working_dir(&c, &ContainerConfig::default()), "/");
        c.working_dir = Some("/work".into());
        assert_eq!(working_dir(&c, &img), "/work");

        let mut pod = Pod {
            spec: Some(PodSpec {
                security_context: Some(PodSecurityContext {
                    run_as_user: Some(1000),
                    run_as_group: Some(3000),
                    supplemental_groups: Some(vec![4000]),
                    ..PodSecurityContext::default()
                }),
                ..PodSpec::default()
            }),
            ..Pod::default()
        };
        c.security_context = Some(SecurityContext {
            run_as_user: Some(10000),
            ..SecurityContext::default()
        });
        let user = user_request(&pod, &c, &img).unwrap();
        assert_eq!(
            user,
            UserRequest {
                image_user: Some("nobody".into()),
                run_as_user: Some(10000),
                run_as_group: Some(3000),
                supplemental_groups: vec![4000],
            }
        );
        pod.spec = None;
        c.security_context = None;
        assert_eq!(
            user_request(&pod, &c, &img).unwrap(),
            UserRequest::image("nobody")
        );
        c.security_context = Some(SecurityContext {
            run_as_user: Some(-1),
            ..SecurityContext::default()
        });
        assert_eq!(
            user_request(&pod, &c, &img).unwrap_err(),
            CommandError::InvalidId {
                field: "runAsUser",
                value: -1
            }
        );
    }

    #[test]
    fn whole_process() {
        let pod = Pod::default();
        let c = Container {
            args: Some(strings(&["echo", "$(MSG)"])),
            ..Container::default()
        };
        let img = image(Some(&["/bin/sh", "-c"]), Some(&["true"]));
        let p = container_process(&pod, &c, &img, &[("MSG".into(), "hi".into())]).unwrap();
        assert_eq!(p.args, strings(&["/bin/sh", "-c", "echo", "hi"]));
        assert_eq!(p.cwd, "/");
        assert_eq!(p.user, UserRequest::default());
    }

    #[test]
    fn run_as_non_root_is_enforced_with_the_kubelets_messages() {
        use super::verify_run_as_non_root;
        let pod = |non_root: Option<bool>, run_as_user: Option<i64>| Pod {
            metadata: nodelet_api::k8s::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some("p".into()),
                namespace: Some("ns".into()),
                uid: Some("u".into()),
                ..Default::default()
            },
            spec: Some(nodelet_api::k8s::api::core::v1::PodSpec {
                security_context: Some(PodSecurityContext {
                    run_as_non_root: non_root,
                    run_as_user,
                    ..PodSecurityContext::default()
                }),
                ..Default::default()
            }),
            ..Pod::default()
        };
        let container = Container {
            name: "c".into(),
            ..Container::default()
        };
        let image = |user: &str| ContainerConfig {
            user: Some(user.into()),
            ..ContainerConfig::default()
        };
        assert_eq!(
            verify_run_as_non_root(&pod(None, None), &container, &image("")),
            Ok(())
        );
        assert_eq!(
            verify_run_as_non_root(&pod(Some(true), Some(0)), &container, &image("1000")),
            Err(
                "container's runAsUser breaks non-root policy (pod: \"p_ns(u)\", container: c)"
                    .into()
            )
        );
        assert_eq!(
            verify_run_as_non_root(&pod(Some(true), Some(5)), &container, &image("")),
            Ok(())
        );
        for root in ["", "0", "0:0"] {
            assert_eq!(
                verify_run_as_non_root(&pod(Some(true), None), &container, &image(root)),
                Err("container has runAsNonRoot and image will run as root (pod: \"p_ns(u)\", container: c)".into()),
                "{root:?}"
            );
        }
        assert_eq!(
            verify_run_as_non_root(&pod(Some(true), None), &container, &image("1000:1000")),
            Ok(())
        );
        assert_eq!(
            verify_run_as_non_root(&pod(Some(true), None), &container, &image("app")),
            Err("container has runAsNonRoot and image has non-numeric user (app), cannot verify user is non-root (pod: \"p_ns(u)\", container: c)".into())
        );
    }
}
