//! Subcommands and global flags.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;

/// nodelet: a Kubernetes node in one binary.
///
/// Runs the Kubernetes API (with admission and a scheduler) and the kubelet in one process,
/// pulls images from real registries and runs pods under real OCI runtimes (runc, crun,
/// youki), one per RuntimeClass handler.
#[derive(Debug, Parser)]
#[command(name = "nodelet", version, propagate_version = true)]
pub struct Cli {
    /// Configuration file (TOML). When the default file does not exist, built-in defaults
    /// are used; a file named explicitly must exist.
    #[arg(long, global = true, value_name = "FILE", default_value = Config::DEFAULT_PATH)]
    pub config: PathBuf,

    /// Node state: images, snapshots, pod sandboxes, node credentials (`config.json`).
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        default_value = "/var/lib/nodelet"
    )]
    pub root_dir: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the Kubernetes API server, scheduler and kubelet in one process; `kubectl` talks
    /// to it through the kubeconfig it writes.
    Serve(crate::serve::ServeArgs),
    /// Run one pod from a YAML file with no server: events and logs on the terminal, Ctrl-C
    /// terminates the pod gracefully.
    Run {
        /// YAML file with the Pod and the objects it refers to.
        #[arg(short = 'f', long = "filename", value_name = "FILE")]
        file: PathBuf,
    },
    /// Manage the node's images: pull, list, inspect, remove.
    Images {
        #[command(subcommand)]
        command: crate::images::ImagesCommand,
    },
    /// The kubelet alone: run the static pods of a manifest directory with no API server
    /// (`--pod-manifest-path`); joining an API server as a node is not built yet.
    Agent(crate::agent::AgentArgs),
    /// Print nodelet's version and the Kubernetes version it serves.
    Version,
    /// The per-container monitor process, started by nodelet itself (`nodelet shim <state-dir>`).
    #[command(hide = true)]
    Shim {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
    /// PID 1 of a pod's shared PID namespace, started by nodelet itself: sleeps and reaps.
    #[command(hide = true)]
    Pause,
    /// Runs a detached `runtime exec` (`kubectl exec -t`) and exits with its process's code.
    #[command(hide = true)]
    ExecReaper {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let explicit_config = cli.config != std::path::Path::new(Config::DEFAULT_PATH);
    let config = Config::load(&cli.config, explicit_config)?;
    match cli.command {
        Command::Version => {
            println!(
                "nodelet {} (Kubernetes {})",
                env!("CARGO_PKG_VERSION"),
                nodelet_api::kubernetes_version()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve(args) => crate::serve::run(args, &config, &cli.root_dir),
        Command::Run { file } => crate::run::run(&file, &config, &cli.root_dir),
        Command::Images { command } => crate::images::run(command, &config, &cli.root_dir),
        Command::Agent(args) => crate::agent::run(args, &config, &cli.root_dir),
        Command::Shim { args } => Ok(ExitCode::from(nodelet_runtime::shim::main(args))),
        Command::Pause => Ok(ExitCode::from(nodelet_runtime::pause::main())),
        Command::ExecReaper { args } => {
            Ok(ExitCode::from(nodelet_runtime::exec_reaper::main(args)))
        }
    }
}
