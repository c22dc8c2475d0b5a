//! `$(VAR)` references in env values, `command` and `args` (spec §5.5).
//!
//! The syntax is the kubelet's, not a shell's: `$(NAME)` is replaced by the value of `NAME` when
//! it is defined (even as the empty string) and left exactly as written when it is not, `$$` is
//! an escaped `$`, and every other `$` is kept. Nothing else (quotes, `${}`, `$NAME`) means
//! anything, so the container's own shell still sees `$HOME` untouched.

/// Expands `$(NAME)` references in `input`, asking `lookup` for each name.
///
/// Scanning is left to right and never recursive: an expanded value is not scanned again.
/// - `$$` → `$` (both characters consumed, so `$$(A)` → `$(A)`);
/// - `$(NAME)` up to the first `)` → the value, or the literal `$(NAME)` when `lookup` says
///   `None` (`$()` looks up the empty name);
/// - `$(` without a closing `)` → kept, and scanning resumes after the `(`;
/// - `$` followed by anything else, or at the very end → kept.
///
/// One deliberate difference: upstream works on bytes and turns a multi-byte character right
/// after a lone `$` into mojibake; here the character is kept intact.
pub fn expand<'v>(input: &str, mut lookup: impl FnMut(&str) -> Option<&'v str>) -> String {
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    // `input[copied..]` has not been written to `out` yet.
    let mut copied = 0;
    let mut cursor = 0;
    while cursor < bytes.len() {
        if bytes[cursor] != b'$' || cursor + 1 == bytes.len() {
            cursor += 1;
            continue;
        }
        out.push_str(&input[copied..cursor]);
        match bytes[cursor + 1] {
            b'$' => {
                out.push('$');
                cursor += 2;
            }
            b'(' => match input[cursor + 2..].find(')') {
                Some(len) => {
                    let name = &input[cursor + 2..cursor + 2 + len];
                    match lookup(name) {
                        Some(value) => out.push_str(value),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    cursor += 2 + len + 1;
                }
                None => {
                    out.push_str("$(");
                    cursor += 2;
                }
            },
            // A lone operator: keep it and let the next character be scanned normally (it
            // cannot be `$`, so nothing it starts is swallowed).
            _ => {
                out.push('$');
                cursor += 1;
            }
        }
        copied = cursor;
    }
    out.push_str(&input[copied..]);
    out
}

/// Looks `name` up in each of `sources` in turn (the kubelet's `MappingFuncFor`): for env values
/// that is the variables defined so far, then the service variables.
pub fn lookup_in<'v>(sources: &[&'v dyn Lookup], name: &str) -> Option<&'v str> {
    sources.iter().find_map(|source| source.get_var(name))
}

/// Something variables can be looked up in.
pub trait Lookup {
    fn get_var(&self, name: &str) -> Option<&str>;
}

impl Lookup for std::collections::HashMap<String, String> {
    fn get_var(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

impl Lookup for std::collections::BTreeMap<String, String> {
    fn get_var(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

impl Lookup for [(String, String)] {
    /// The last definition wins, as in an environment built by successive assignments.
    fn get_var(&self, name: &str) -> Option<&str> {
        self.iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn vars() -> HashMap<String, String> {
        [
            ("VAR_A", "A"),
            ("VAR_B", "B"),
            ("VAR_C", "C"),
            ("VAR_REF", "$(VAR_A)"),
            ("VAR_EMPTY", ""),
            ("FOO", "foo-value"),
            ("BAR", "bar-value"),
            ("", "empty-name"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    #[test]
    fn expands_like_the_kubelet() {
        let cases = [
            // (input, expected)
            ("$(VAR_A)", "A"),
            ("___$(VAR_B)___", "___B___"),
            ("$(VAR_A)-$(VAR_A)", "A-A"),
            ("$(VAR_A)-1", "A-1"),
            ("$(VAR_A)_$(VAR_B)_$(VAR_C)", "A_B_C"),
            ("foo\\$(VAR_C)bar", "foo\\Cbar"),
            ("foo\\\\$(VAR_C)bar", "foo\\\\Cbar"),
            ("$(FOO);;$(BAR)", "foo-value;;bar-value"),
            // escapes
            ("$$(VAR_B)", "$(VAR_B)"),
            ("$$$(FOO)", "$foo-value"),
            ("$$$$(FOO)", "$$(FOO)"),
            ("f000-$$VAR_A", "f000-$VAR_A"),
            ("$$", "$"),
            ("$$$", "$$"),
            // undefined and defined-as-empty
            ("$(UNDEFINED)", "$(UNDEFINED)"),
            ("$(VAR_EMPTY)", ""),
            ("x$(VAR_EMPTY)y", "xy"),
            ("$()", "empty-name"),
            // no recursion
            ("$(VAR_REF)", "$(VAR_A)"),
            // incomplete and stray operators
            ("$(VAR_A", "$(VAR_A"),
            ("$(", "$("),
            ("$(VAR_A$(VAR_B)", "$(VAR_A$(VAR_B)"),
            ("$", "$"),
            ("foo$", "foo$"),
            ("$VAR_A", "$VAR_A"),
            ("$ $)", "$ $)"),
            ("${VAR_A}", "${VAR_A}"),
            ("$x$(VAR_A)", "$xA"),
            ("$é$(VAR_A)", "$éA"),
            ("é$(VAR_B)é", "éBé"),
            ("", ""),
            ("no refs", "no refs"),
        ];
        let vars = vars();
        for (input, want) in cases {
            assert_eq!(
                expand(input, |n| vars.get(n).map(String::as_str)),
                want,
                "input {input:?}"
            );
        }
    }

    #[test]
    fn looks_up_sources_in_order() {
        let first: HashMap<String, String> = [("A".to_owned(), "first".to_owned())].into();
        let second: HashMap<String, String> = [
            ("A".to_owned(), "second".to_owned()),
            ("B".to_owned(), "b".to_owned()),
        ]
        .into();
        let sources: [&dyn Lookup; 2] = [&first, &second];
        assert_eq!(
            expand("$(A) $(B) $(C)", |n| lookup_in(&sources, n)),
            "first b $(C)"
        );
    }

    #[test]
    fn pairs_lookup_uses_the_last_definition() {
        let env = vec![
            ("A".to_owned(), "1".to_owned()),
            ("A".to_owned(), "2".to_owned()),
        ];
        assert_eq!(env.as_slice().get_var("A"), Some("2"));
        assert_eq!(env.as_slice().get_var("B"), None);
    }
}
