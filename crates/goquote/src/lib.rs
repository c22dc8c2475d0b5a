//! Go's `strconv.Quote` (`%q`), which upstream's messages use for names and values; the API
//! server's field errors and the kubelet's image events quote with it, so ours must match.

/// Quotes a string like Go's `strconv.Quote` (`%q`): double quotes, `\"` and `\\`, the usual C
/// escapes, `\x..` for other ASCII controls, `\u....` / `\U........` for unprintable runes.
///
/// Non-ASCII characters are kept when printable. Go decides that from Unicode tables we do not
/// carry; we treat control, non-ASCII whitespace, common format characters and private-use
/// characters as unprintable, which only differs from Go for unassigned code points.
pub fn go_quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if is_go_printable(c) => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

fn is_go_printable(c: char) -> bool {
    if c.is_ascii() {
        return c == ' ' || c.is_ascii_graphic();
    }
    let code = c as u32;
    let is_format = matches!(
        code,
        0xAD | 0x600..=0x605
            | 0x61C
            | 0x6DD
            | 0x70F
            | 0x180E
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x206F
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0xE0001
            | 0xE0020..=0xE007F
    );
    let is_private_or_nonchar =
        matches!(code, 0xE000..=0xF8FF | 0xF0000..) || (code & 0xFFFE) == 0xFFFE;
    !(c.is_control() || c.is_whitespace() || is_format || is_private_or_nonchar)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_quote_matches_go() {
        assert_eq!(go_quote("nginx"), "\"nginx\"");
        assert_eq!(go_quote(""), "\"\"");
        assert_eq!(go_quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(
            go_quote("\t\r\n\u{7}\u{8}\u{b}\u{c}"),
            "\"\\t\\r\\n\\a\\b\\v\\f\""
        );
        assert_eq!(go_quote("\u{0}\u{1b}\u{7f}"), "\"\\x00\\x1b\\x7f\"");
        assert_eq!(go_quote("caf\u{e9} \u{65e5}"), "\"caf\u{e9} \u{65e5}\"");
        assert_eq!(
            go_quote("\u{a0}\u{200b}\u{feff}"),
            "\"\\u00a0\\u200b\\ufeff\""
        );
        assert_eq!(go_quote("\u{85}"), "\"\\u0085\"");
        assert_eq!(go_quote("\u{f0000}"), "\"\\U000f0000\"");
    }

    #[test]
    fn keeps_printable_text_and_escapes_controls() {
        let cases = [
            (" nginx", "\" nginx\""),
            ("a\tb", "\"a\\tb\""),
            ("\u{1}", "\"\\x01\""),
            ("é", "\"é\""),
            ("back\\slash", "\"back\\\\slash\""),
        ];
        for (input, want) in cases {
            assert_eq!(go_quote(input), want, "{input:?}");
        }
    }
}
