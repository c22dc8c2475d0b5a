//! Filesystem operations resolved inside a root (being written).
