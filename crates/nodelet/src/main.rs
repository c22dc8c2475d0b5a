//! The `nodelet` binary: command line, configuration and process wiring. The only crate that
//! uses `anyhow`; every library crate returns typed errors.

mod agent;
mod cli;
mod config;
mod images;
mod node;
mod run;
mod serve;
mod serve_kubelet;
mod serve_streams;
mod terminal;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cli::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("nodelet: {err:#}");
            ExitCode::FAILURE
        }
    }
}
