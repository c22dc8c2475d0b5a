//! # nodelet-sys
//!
//! The only crate with `unsafe` code and raw syscalls (mounts, namespaces, pidfds, cgroups,
//! subreapers), each behind a trait so pure logic elsewhere can be tested with a fake.
//!
//! **May not:** hold policy. It does exactly the syscall it is asked for and reports the
//! `errno` as a typed error; deciding what to mount or kill is the caller's job.
pub mod cgroup;
pub mod confined;
pub mod daemon;
pub mod fs;
pub mod mount;
pub mod namespace;
pub mod process;
pub mod terminal;
pub mod watch;
