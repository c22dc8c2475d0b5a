//! The syntax errors Go's `encoding/json` reports, word for word: the API server quotes them
//! in validation messages (a Secret's `.dockerconfigjson`, for one), so a user who pasted a
//! broken docker config sees what upstream would show.
//!
//! A byte-at-a-time recogniser with the states of Go's scanner; an error names the offending
//! byte (quoted as Go quotes it) and what the scanner was looking for. Go finishes its input
//! by feeding one space, so an unfinished literal ends with "invalid character ' ' ...".

/// Where in a composite value the scanner is.
#[derive(Clone, Copy, PartialEq)]
enum Parse {
    ObjectKey,
    ObjectValue,
    ArrayValue,
}

#[derive(Clone, Copy, PartialEq)]
enum State {
    BeginValue,
    BeginValueOrEmpty,
    BeginStringOrEmpty,
    BeginString,
    EndValue,
    EndTop,
    InString,
    InStringEsc,
    /// Inside `\u`, with this many hex digits read.
    InStringEscU(u8),
    Neg,
    One,
    Zero,
    Dot,
    Dot0,
    E,
    ESign,
    E0,
    /// Inside `true`, `false` or `null`: the word and how many bytes of it were read.
    Literal(&'static str, usize),
}

const END_OF_INPUT: &str = "unexpected end of JSON input";

/// Go's `json.Valid` with its error: `None` when `data` is one JSON value.
pub fn syntax_error(data: &[u8]) -> Option<String> {
    let mut scanner = Scanner {
        state: State::BeginValue,
        stack: Vec::new(),
    };
    for &c in data {
        if let Err(e) = scanner.step(c) {
            return Some(e);
        }
    }
    if scanner.state == State::EndTop {
        return None;
    }
    // Go's eof(): one more space, which finishes numbers and fails unfinished literals.
    if let Err(e) = scanner.step(b' ') {
        return Some(e);
    }
    (scanner.state != State::EndTop).then(|| END_OF_INPUT.to_owned())
}

/// The top-level kind of a syntactically valid document, as Go's `json.Unmarshal` into
/// `map[string]interface{}` names it when refusing (`None` for an object or `null`).
pub fn non_object_kind(data: &[u8]) -> Option<&'static str> {
    match data.iter().find(|c| !is_space(**c))? {
        b'{' | b'n' => None,
        b'[' => Some("array"),
        b'"' => Some("string"),
        b't' | b'f' => Some("bool"),
        _ => Some("number"),
    }
}

struct Scanner {
    state: State,
    stack: Vec<Parse>,
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

/// Go's `quoteChar`: the byte as a rune, quoted by `strconv.Quote`, in single quotes.
fn quote_char(c: u8) -> String {
    let inner = match c {
        b'\'' => "\\'".to_owned(),
        b'"' => "\"".to_owned(),
        b'\\' => "\\\\".to_owned(),
        0x07 => "\\a".to_owned(),
        0x08 => "\\b".to_owned(),
        0x0c => "\\f".to_owned(),
        b'\n' => "\\n".to_owned(),
        b'\r' => "\\r".to_owned(),
        b'\t' => "\\t".to_owned(),
        0x0b => "\\v".to_owned(),
        0..=0x1f | 0x7f => format!("\\x{c:02x}"),
        0x80..=0xa0 | 0xad => format!("\\u{c:04x}"),
        _ => char::from(c).to_string(),
    };
    format!("'{inner}'")
}

fn invalid(c: u8, context: &str) -> Result<(), String> {
    Err(format!("invalid character {} {context}", quote_char(c)))
}

impl Scanner {
    fn step(&mut self, c: u8) -> Result<(), String> {
        match self.state {
            State::BeginValueOrEmpty if is_space(c) => Ok(()),
            State::BeginValueOrEmpty if c == b']' => self.end_value(c),
            State::BeginValueOrEmpty | State::BeginValue => self.begin_value(c),
            State::BeginStringOrEmpty if is_space(c) => Ok(()),
            State::BeginStringOrEmpty if c == b'}' => {
                *self.stack.last_mut().unwrap() = Parse::ObjectValue;
                self.end_value(c)
            }
            State::BeginStringOrEmpty | State::BeginString => match c {
                _ if is_space(c) => Ok(()),
                b'"' => self.to(State::InString),
                _ => invalid(c, "looking for beginning of object key string"),
            },
            State::EndValue => self.end_value(c),
            State::EndTop if is_space(c) => Ok(()),
            State::EndTop => invalid(c, "after top-level value"),
            State::InString => match c {
                b'"' => self.to(State::EndValue),
                b'\\' => self.to(State::InStringEsc),
                0..=0x1f => invalid(c, "in string literal"),
                _ => Ok(()),
            },
            State::InStringEsc => match c {
                b'b' | b'f' | b'n' | b'r' | b't' | b'\\' | b'/' | b'"' => self.to(State::InString),
                b'u' => self.to(State::InStringEscU(0)),
                _ => invalid(c, "in string escape code"),
            },
            State::InStringEscU(n) if c.is_ascii_hexdigit() => self.to(if n == 3 {
                State::InString
            } else {
                State::InStringEscU(n + 1)
            }),
            State::InStringEscU(_) => invalid(c, "in \\u hexadecimal character escape"),
            State::Neg => match c {
                b'0' => self.to(State::Zero),
                b'1'..=b'9' => self.to(State::One),
                _ => invalid(c, "in numeric literal"),
            },
            State::One if c.is_ascii_digit() => Ok(()),
            State::One | State::Zero => match c {
                b'.' => self.to(State::Dot),
                b'e' | b'E' => self.to(State::E),
                _ => self.end_value(c),
            },
            State::Dot if c.is_ascii_digit() => self.to(State::Dot0),
            State::Dot => invalid(c, "after decimal point in numeric literal"),
            State::Dot0 => match c {
                _ if c.is_ascii_digit() => Ok(()),
                b'e' | b'E' => self.to(State::E),
                _ => self.end_value(c),
            },
            State::E if c == b'+' || c == b'-' => self.to(State::ESign),
            State::E | State::ESign if c.is_ascii_digit() => self.to(State::E0),
            State::E | State::ESign => invalid(c, "in exponent of numeric literal"),
            State::E0 if c.is_ascii_digit() => Ok(()),
            State::E0 => self.end_value(c),
            State::Literal(word, read) => {
                let want = word.as_bytes()[read];
                if c != want {
                    return invalid(
                        c,
                        &format!("in literal {word} (expecting {})", quote_char(want)),
                    );
                }
                self.to(if read + 1 == word.len() {
                    State::EndValue
                } else {
                    State::Literal(word, read + 1)
                })
            }
        }
    }

    fn to(&mut self, state: State) -> Result<(), String> {
        self.state = state;
        Ok(())
    }

    fn begin_value(&mut self, c: u8) -> Result<(), String> {
        match c {
            _ if is_space(c) => Ok(()),
            b'{' => {
                self.stack.push(Parse::ObjectKey);
                self.to(State::BeginStringOrEmpty)
            }
            b'[' => {
                self.stack.push(Parse::ArrayValue);
                self.to(State::BeginValueOrEmpty)
            }
            b'"' => self.to(State::InString),
            b'-' => self.to(State::Neg),
            b'0' => self.to(State::Zero),
            b'1'..=b'9' => self.to(State::One),
            b't' => self.to(State::Literal("true", 1)),
            b'f' => self.to(State::Literal("false", 1)),
            b'n' => self.to(State::Literal("null", 1)),
            _ => invalid(c, "looking for beginning of value"),
        }
    }

    fn end_value(&mut self, c: u8) -> Result<(), String> {
        let Some(&top) = self.stack.last() else {
            self.state = State::EndTop;
            return self.step(c);
        };
        if is_space(c) {
            return self.to(State::EndValue);
        }
        match (top, c) {
            (Parse::ObjectKey, b':') => {
                *self.stack.last_mut().unwrap() = Parse::ObjectValue;
                self.to(State::BeginValue)
            }
            (Parse::ObjectKey, _) => invalid(c, "after object key"),
            (Parse::ObjectValue, b',') => {
                *self.stack.last_mut().unwrap() = Parse::ObjectKey;
                self.to(State::BeginString)
            }
            (Parse::ObjectValue, b'}') | (Parse::ArrayValue, b']') => {
                self.stack.pop();
                self.end_value_after_close()
            }
            (Parse::ObjectValue, _) => invalid(c, "after object key:value pair"),
            (Parse::ArrayValue, b',') => self.to(State::BeginValue),
            (Parse::ArrayValue, _) => invalid(c, "after array element"),
        }
    }

    /// After a closing bracket: the enclosing value ended (or the document did).
    fn end_value_after_close(&mut self) -> Result<(), String> {
        self.state = if self.stack.is_empty() {
            State::EndTop
        } else {
            State::EndValue
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_documents() {
        for ok in [
            "{}",
            " { \"a\" : [1, -0.5e+3, true, false, null, \"x\\u00e9\\n\"] } ",
            "[]",
            "[[]]",
            "12",
            "\"s\"",
            "null",
            "{\"auths\":{\"r:5000\":{\"auth\":\"dTpw\"}}}\n",
        ] {
            assert_eq!(syntax_error(ok.as_bytes()), None, "{ok}");
        }
    }

    /// Messages as Go 1.22's `json.Unmarshal` prints them.
    #[test]
    fn go_messages() {
        for (input, want) in [
            ("", "unexpected end of JSON input"),
            ("   ", "unexpected end of JSON input"),
            ("{\"auths\": {\n", "unexpected end of JSON input"),
            ("\"abc", "unexpected end of JSON input"),
            ("x", "invalid character 'x' looking for beginning of value"),
            (
                "{bad\n",
                "invalid character 'b' looking for beginning of object key string",
            ),
            ("{\"a\" 1}", "invalid character '1' after object key"),
            (
                "{\"a\":1 \"b\"}",
                "invalid character '\"' after object key:value pair",
            ),
            ("[1 2]", "invalid character '2' after array element"),
            ("{} x", "invalid character 'x' after top-level value"),
            ("01", "invalid character '1' after top-level value"),
            (
                "{\"a\":01}",
                "invalid character '1' after object key:value pair",
            ),
            ("[-]", "invalid character ']' in numeric literal"),
            (
                "1.",
                "invalid character ' ' after decimal point in numeric literal",
            ),
            ("1e", "invalid character ' ' in exponent of numeric literal"),
            (
                "tru",
                "invalid character ' ' in literal true (expecting 'e')",
            ),
            (
                "nul1",
                "invalid character '1' in literal null (expecting 'l')",
            ),
            (
                "fals",
                "invalid character ' ' in literal false (expecting 'e')",
            ),
            ("\"a\nb\"", "invalid character '\\n' in string literal"),
            ("\"\\x\"", "invalid character 'x' in string escape code"),
            (
                "\"\\u12g4\"",
                "invalid character 'g' in \\u hexadecimal character escape",
            ),
            (
                "{'a':1}",
                "invalid character '\\'' looking for beginning of object key string",
            ),
            (
                "[\t,]",
                "invalid character ',' looking for beginning of value",
            ),
            (
                "\u{1}",
                "invalid character '\\x01' looking for beginning of value",
            ),
            (
                "{\"a\":1,}",
                "invalid character '}' looking for beginning of object key string",
            ),
        ] {
            assert_eq!(
                syntax_error(input.as_bytes()).as_deref(),
                Some(want),
                "{input:?}"
            );
        }
    }

    #[test]
    fn top_level_kinds() {
        assert_eq!(non_object_kind(b" {}"), None);
        assert_eq!(non_object_kind(b"null"), None);
        assert_eq!(non_object_kind(b"[1]"), Some("array"));
        assert_eq!(non_object_kind(b"\"s\""), Some("string"));
        assert_eq!(non_object_kind(b"-1"), Some("number"));
        assert_eq!(non_object_kind(b"true"), Some("bool"));
    }
}
