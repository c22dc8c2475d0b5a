//! `nodelet-testbed`: builds the test images and runs the shared bed for the test command.
//!
//! ```text
//! nodelet-testbed prepare          build and push the images into the cache, once
//! nodelet-testbed up DIR [--empty] run the bed in DIR until SIGTERM/SIGINT; writes DIR/bed.json
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nodelet_testbed::{BED_ENV, Bed, Contents, cache_dir, prepare};

const USAGE: &str = "usage: nodelet-testbed prepare | nodelet-testbed up DIR [--empty]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["prepare"] => prepare(&cache_dir()).map(|prepared| {
            for (name, image) in &prepared.images {
                println!("{name:<13} {} {}", image.digest, image.media_type);
            }
        }),
        ["up", dir] => up(PathBuf::from(dir), Contents::Images),
        ["up", dir, "--empty"] => up(PathBuf::from(dir), Contents::Empty),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("nodelet-testbed: {err}");
            ExitCode::FAILURE
        }
    }
}

fn up(dir: PathBuf, contents: Contents) -> Result<(), nodelet_testbed::Error> {
    // bed.json is read by tests running in other directories.
    let dir = std::path::absolute(dir)?;
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, stop.clone())?;
    }
    let bed = Bed::start(Some(&dir), contents)?;
    println!("plain (A) http  {}", bed.plain.host);
    println!("basic (B) https {}", bed.basic.host);
    println!(
        "token (C) https {}  realm {}",
        bed.token.host, bed.token_realm
    );
    println!("export {BED_ENV}={}", dir.join("bed.json").display());
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(bed);
    Ok(())
}
