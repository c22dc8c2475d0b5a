//! Shell-style pattern matching with the semantics of Go's `path/filepath.Match` on Unix.
//!
//! The kubelet matches each dot-separated host label of a registry key against the image's
//! label with that function, so `*`, `?`, `[...]` classes and `\` escapes must behave the same
//! here. Patterns are compiled first so that a malformed pattern never matches anything,
//! whatever the name (the kubelet treats Go's `ErrBadPattern` as "no match").

/// The path separator that `*` and `?` never cross (Go's `filepath.Separator` on Unix).
const SEPARATOR: char = '/';

/// The pattern is not well formed (unclosed class, empty class, trailing `\`, bad range).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("syntax error in pattern")]
pub struct BadPattern;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// `*`: any run of non-separator characters (consecutive stars are folded into one).
    AnyRun,
    /// `?`: exactly one non-separator character.
    AnyChar,
    /// A literal character, possibly written with a `\` escape.
    Literal(char),
    /// `[...]` or `[^...]`: one character inside (or outside) the inclusive ranges.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl Token {
    /// Whether this single-character token accepts `c` (never called for [`Token::AnyRun`]).
    fn accepts(&self, c: char) -> bool {
        match self {
            Token::AnyRun => false,
            Token::AnyChar => c != SEPARATOR,
            Token::Literal(literal) => *literal == c,
            Token::Class { negated, ranges } => {
                let inside = ranges.iter().any(|(lo, hi)| *lo <= c && c <= *hi);
                inside != *negated
            }
        }
    }
}

/// A compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobPattern {
    tokens: Vec<Token>,
}

impl GlobPattern {
    /// Compiles `pattern`, rejecting everything Go's `filepath.Match` reports as `ErrBadPattern`.
    pub fn new(pattern: &str) -> Result<Self, BadPattern> {
        let mut chars = pattern.chars().peekable();
        let mut tokens = Vec::new();
        while let Some(c) = chars.next() {
            let token = match c {
                '*' => {
                    if tokens.last() == Some(&Token::AnyRun) {
                        continue;
                    }
                    Token::AnyRun
                }
                '?' => Token::AnyChar,
                '\\' => Token::Literal(chars.next().ok_or(BadPattern)?),
                '[' => parse_class(&mut chars)?,
                other => Token::Literal(other),
            };
            tokens.push(token);
        }
        Ok(Self { tokens })
    }

    /// Whether the whole of `name` matches the pattern.
    pub fn matches(&self, name: &str) -> bool {
        let name: Vec<char> = name.chars().collect();
        let tokens = &self.tokens;
        let (mut token_at, mut name_at) = (0, 0);
        // Where to resume if the current attempt fails: the token after the most recent `*`
        // and the first name character that star has not yet swallowed. Only the most recent
        // star needs to be retried: any longer run of an earlier star can be replayed by it.
        let mut resume: Option<(usize, usize)> = None;
        while name_at < name.len() {
            match tokens.get(token_at) {
                Some(Token::AnyRun) => {
                    token_at += 1;
                    resume = Some((token_at, name_at));
                    continue;
                }
                Some(token) if token.accepts(name[name_at]) => {
                    token_at += 1;
                    name_at += 1;
                    continue;
                }
                _ => {}
            }
            match resume {
                Some((after_star, swallowed_up_to)) if name[swallowed_up_to] != SEPARATOR => {
                    resume = Some((after_star, swallowed_up_to + 1));
                    token_at = after_star;
                    name_at = swallowed_up_to + 1;
                }
                _ => return false,
            }
        }
        tokens[token_at..]
            .iter()
            .all(|token| *token == Token::AnyRun)
    }
}

/// Compiles and matches in one step; a malformed pattern matches nothing.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    GlobPattern::new(pattern).is_ok_and(|compiled| compiled.matches(name))
}

/// Parses a class body after its `[`, up to and including the closing `]`.
fn parse_class(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<Token, BadPattern> {
    let negated = chars.next_if_eq(&'^').is_some();
    let mut ranges = Vec::new();
    loop {
        // A `]` closes the class only once it holds at least one range: `[]` and `[]a]` are
        // malformed in Go, not "a class containing `]`".
        if !ranges.is_empty() && chars.next_if_eq(&']').is_some() {
            return Ok(Token::Class { negated, ranges });
        }
        let lo = class_char(chars)?;
        let hi = if chars.next_if_eq(&'-').is_some() {
            class_char(chars)?
        } else {
            lo
        };
        if hi < lo {
            return Err(BadPattern);
        }
        ranges.push((lo, hi));
    }
}

/// One (possibly escaped) character inside a class; a bare `-` or `]` is malformed there.
fn class_char(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<char, BadPattern> {
    match chars.next() {
        None | Some('-') | Some(']') => Err(BadPattern),
        Some('\\') => chars.next().ok_or(BadPattern),
        Some(c) => Ok(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_like_go_filepath_match() {
        // (pattern, name, expected)
        let cases: &[(&str, &str, bool)] = &[
            ("abc", "abc", true),
            ("abc", "abd", false),
            ("abc", "ab", false),
            ("*", "", true),
            ("*", "anything", true),
            ("*c", "abc", true),
            ("a*", "a", true),
            ("a*", "ab/c", false),
            ("a*b*c*d*e*", "axbxcxdxe", true),
            ("a*b*c*d*e*", "axbxcxdxexxx", true),
            ("a*b?c*x", "abxbbxdbxebxczzx", true),
            ("a*b?c*x", "abxbbxdbxebxczzy", false),
            ("ab[c]", "abc", true),
            ("ab[b-d]", "abc", true),
            ("ab[e-g]", "abc", false),
            ("ab[^c]", "abc", false),
            ("ab[^b-d]", "abc", false),
            ("ab[^e-g]", "abc", true),
            ("a\\*b", "a*b", true),
            ("a\\*b", "ab", false),
            ("a?b", "a☺b", true),
            ("a[^a]b", "a☺b", true),
            ("a???b", "a☺b", false),
            ("a[\\-]b", "a-b", true),
            ("[\\]a]", "]", true),
            ("[x\\-]", "-", true),
            ("[\\-x]", "z", false),
            ("a?b", "a/b", false),
            ("a*b", "a/b", false),
            ("*x", "xxx", true),
            ("prefix-*", "prefix-good", true),
            ("*-good", "prefix-good", true),
            ("app*", "application", true),
            ("app*", "ap", false),
            ("K8s", "k8s", false),
        ];
        for (pattern, name, expected) in cases {
            assert_eq!(
                glob_match(pattern, name),
                *expected,
                "pattern {pattern:?} name {name:?}"
            );
        }
    }

    #[test]
    fn malformed_patterns_never_match() {
        for pattern in [
            "[", "[^", "[]", "[]a]", "[-]", "[x-]", "[a-b-c]", "[z-a]", "\\", "a[", "a\\", "*[",
        ] {
            assert_eq!(
                GlobPattern::new(pattern),
                Err(BadPattern),
                "pattern {pattern:?}"
            );
            assert!(!glob_match(pattern, "a"), "pattern {pattern:?}");
            assert!(!glob_match(pattern, "["), "pattern {pattern:?}");
        }
    }

    #[test]
    fn many_stars_stay_fast() {
        let pattern = "*a".repeat(50);
        let name = "a".repeat(49) + "b";
        assert!(!glob_match(&pattern, &name));
    }
}
