//! Pure rules for entry names: cleaning, limits, and what a whiteout name means.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::{Cause, UnpackLimits};

/// The OCI whiteout prefix: `.wh.<name>` deletes `<name>` of the lower layers.
pub(crate) const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// The OCI opaque-directory marker: hides every lower-layer entry of its directory.
pub(crate) const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";

/// What a cleaned entry name asks for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// An ordinary object at this path (empty for the layer root).
    Plain(PathBuf),
    /// `dir/.wh.name`: a whiteout of `dir/name`.
    Whiteout(PathBuf),
    /// `dir/.wh..wh..opq`: make `dir` opaque.
    Opaque(PathBuf),
}

/// Cleans a raw tar name into a path relative to the layer root:
///
/// - a NUL byte anywhere is refused (a header name cannot hold one; a PAX record can);
/// - names longer than `max_path_len` bytes (as written in the archive) are refused;
/// - leading `/` are dropped: absolute names are taken relative to the root, as tar
///   producers do when they strip them;
/// - empty and `.` components are dropped (`./a//b/` is `a/b`);
/// - any `..` component is refused, wherever it is (`a/../b` too): a layer has no reason to
///   write one, and refusing is simpler to trust than resolving it;
/// - more than `max_depth` components are refused.
///
/// The result may be empty: the layer root itself (`./` or `/`).
pub(crate) fn clean(raw: &[u8], limits: &UnpackLimits) -> Result<PathBuf, Cause> {
    if raw.contains(&0) {
        return Err(Cause::NulInName);
    }
    if raw.len() > limits.max_path_len {
        return Err(Cause::NameTooLong {
            len: raw.len(),
            limit: limits.max_path_len,
        });
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut depth = 0usize;
    for component in raw.split(|&b| b == b'/') {
        match component {
            b"" | b"." => continue,
            b".." => return Err(Cause::ParentDirComponent),
            _ => {}
        }
        depth += 1;
        if depth > limits.max_depth {
            return Err(Cause::TooDeep {
                limit: limits.max_depth,
            });
        }
        if !out.is_empty() {
            out.push(b'/');
        }
        out.extend_from_slice(component);
    }
    Ok(PathBuf::from(OsStr::from_bytes(&out)))
}

/// Interprets the whiteout conventions on a cleaned path:
///
/// - a final `.wh..wh..opq` makes its directory opaque;
/// - a final `.wh.<name>` whites out `<name>`, which must be a plain name: not empty, `.`,
///   `..`, nor itself `.wh.`-prefixed (`.wh..wh.*` names are reserved AUFS metadata);
/// - a `.wh.` component anywhere but last is refused: no directory of a layer can carry a
///   whiteout name.
pub(crate) fn classify(path: PathBuf) -> Result<Target, Cause> {
    let bytes = path.as_os_str().as_bytes();
    let (parent, base) = match bytes.iter().rposition(|&b| b == b'/') {
        Some(i) => (&bytes[..i], &bytes[i + 1..]),
        None => (&bytes[..0], bytes),
    };
    if parent
        .split(|&b| b == b'/')
        .any(|c| c.starts_with(WHITEOUT_PREFIX))
    {
        return Err(Cause::WhiteoutDirectory);
    }
    if !base.starts_with(WHITEOUT_PREFIX) {
        return Ok(Target::Plain(path));
    }
    let parent = PathBuf::from(OsStr::from_bytes(parent));
    if base == OPAQUE_MARKER {
        return Ok(Target::Opaque(parent));
    }
    let name = &base[WHITEOUT_PREFIX.len()..];
    if name.is_empty() || name == b"." || name == b".." || name.starts_with(WHITEOUT_PREFIX) {
        return Err(Cause::InvalidWhiteout {
            name: String::from_utf8_lossy(base).into_owned(),
        });
    }
    Ok(Target::Whiteout(parent.join(OsStr::from_bytes(name))))
}

/// The parent of a cleaned, non-empty path (empty for a top-level name).
pub(crate) fn parent(path: &Path) -> Option<&Path> {
    if path.as_os_str().is_empty() {
        None
    } else {
        path.parent()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> UnpackLimits {
        UnpackLimits {
            max_path_len: 64,
            max_depth: 4,
            ..UnpackLimits::default()
        }
    }

    fn ok(raw: &str) -> String {
        clean(raw.as_bytes(), &limits())
            .unwrap()
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn cleaning() {
        for (raw, want) in [
            ("a", "a"),
            ("a/b/", "a/b"),
            ("./a//b/./c", "a/b/c"),
            ("/abs/x", "abs/x"),
            ("///abs", "abs"),
            ("./", ""),
            ("/", ""),
            ("", ""),
            (".wh.x", ".wh.x"),
            ("a/...", "a/..."),
            ("a/..b", "a/..b"),
        ] {
            assert_eq!(ok(raw), want, "{raw:?}");
        }
    }

    #[test]
    fn cleaning_refusals() {
        let err = |raw: &[u8]| clean(raw, &limits()).unwrap_err();
        assert!(matches!(err(b".."), Cause::ParentDirComponent));
        assert!(matches!(err(b"../x"), Cause::ParentDirComponent));
        assert!(matches!(err(b"a/../b"), Cause::ParentDirComponent));
        assert!(matches!(err(b"a/b/.."), Cause::ParentDirComponent));
        assert!(matches!(err(b"/../x"), Cause::ParentDirComponent));
        assert!(matches!(err(b"a\0b"), Cause::NulInName));
        assert!(matches!(err(b"a/b/c/d/e"), Cause::TooDeep { limit: 4 }));
        assert!(matches!(
            err(&[b'a'; 65]),
            Cause::NameTooLong { len: 65, limit: 64 }
        ));
        // Depth counts real components only.
        assert_eq!(ok("./a/./b/./c/./d/"), "a/b/c/d");
    }

    #[test]
    fn whiteouts() {
        let c = |p: &str| classify(PathBuf::from(p));
        assert_eq!(c("a/b").unwrap(), Target::Plain("a/b".into()));
        assert_eq!(c("").unwrap(), Target::Plain("".into()));
        assert_eq!(c("a/.wh.b").unwrap(), Target::Whiteout("a/b".into()));
        assert_eq!(c(".wh.b").unwrap(), Target::Whiteout("b".into()));
        assert_eq!(c(".wh.b.c").unwrap(), Target::Whiteout("b.c".into()));
        assert_eq!(c(".wh....").unwrap(), Target::Whiteout("...".into()));
        assert_eq!(c("a/.wh..wh..opq").unwrap(), Target::Opaque("a".into()));
        assert_eq!(c(".wh..wh..opq").unwrap(), Target::Opaque("".into()));
        for bad in [
            ".wh.",
            "a/.wh..",
            "a/.wh...",
            ".wh..wh.plnk",
            ".wh..wh..opqx",
        ] {
            assert!(
                matches!(c(bad), Err(Cause::InvalidWhiteout { .. })),
                "{bad}"
            );
        }
        assert!(matches!(c(".wh.a/b"), Err(Cause::WhiteoutDirectory)));
        assert!(matches!(c("x/.wh.a/.wh.b"), Err(Cause::WhiteoutDirectory)));
    }

    #[test]
    fn parents() {
        assert_eq!(parent(Path::new("")), None);
        assert_eq!(parent(Path::new("a")), Some(Path::new("")));
        assert_eq!(parent(Path::new("a/b")), Some(Path::new("a")));
    }
}
