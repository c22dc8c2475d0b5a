//! # nodelet-kubelet
//!
//! What a node does with a pod: per-pod workers that re-run an idempotent sync against what
//! they observe (so a restart of nodelet recovers through the same code), image pulls with
//! back-off, the container environment (env, envFrom, downward API, service variables),
//! RuntimeClass resolution, lifecycle hooks, restarts, events and pod status.
//!
//! **May not:** reach the API server except through `kube::Client`, touch the store directly,
//! or run syscalls itself (that is `nodelet-runtime`'s and `nodelet-sys`'s job).
//!
//! The modules below are pure rules (no I/O, no clocks: time is an argument), each following
//! `shared/spec/kubelet-semantics.md` section by section:
//!
//! | module | concept (spec §) |
//! |---|---|
//! | [`expansion`] | `$(VAR)` references (§5.5) |
//! | [`env`](mod@env) | a container's environment: image `ENV` < Services < `envFrom` < `env` (§5.2, §5.3) |
//! | [`downward`] | `fieldRef` and `resourceFieldRef` values (§5.4) |
//! | [`service_env`] | docker-link variables of Services, `enableServiceLinks` (§5.6) |
//! | [`command`] | `command`/`args` against `Entrypoint`/`Cmd`, working dir, user (§5.7) |
//! | [`hostname`] | hostname, subdomain, FQDN and `/etc/hosts` (§5.1) |
//! | [`dns`] | the pod's `/etc/resolv.conf` from `dnsPolicy` and `dnsConfig` (no cluster DNS yet) |
//! | [`termination_message`] | `terminationMessagePath` and the log fallback (§5.8) |
//! | [`runtime_class`] | class → handler; a missing one fails the pod, as the seed says (§6.3) |
//! | [`hooks`] | hook failure texts, `httpGet` targets, grace-period accounting (§7) |
//! | [`backoff`] | CrashLoopBackOff and the restart policy (§8.7, §8.8) |
//! | [`events`] | event reasons and container/pod event messages (§8.1, §8.2) |
//! | [`volumes`] | `spec.volumes` → volume plans, `volumeMounts` → bind mounts |
//! | [`status`] | container states, pod phase, conditions, `kubectl get pods` (§8.3–§8.6, §8.10) |

pub mod backoff;
pub mod command;
pub mod dns;
pub mod downward;
pub mod env;
pub mod events;
pub mod expansion;
pub mod hooks;
pub mod hostname;
pub mod pod_resources;
pub mod runtime_class;
pub mod seccomp;
pub mod service_env;
pub mod status;
pub mod termination_message;
pub mod volumes;

// The stateful parts (I/O, threads, the runtime): the pod worker and the pod sources.
pub mod insecure_tls;
pub mod pod_worker;
pub mod probes;
pub mod sources;
