//! Text that came from outside (an alert receiver's error answer, GitHub's or Argo's
//! messages, Argo CD's stream errors) is stored and logged only in printable form: a
//! newline, a carriage return, an escape sequence or a bidirectional override inside it
//! could forge a log line, rewrite a terminal or reorder what a person reads.

/// `s` with every control character (C0, DEL, C1), line and paragraph separator and
/// bidirectional control written as an escape (`\n`, `\r`, `\t`, `\u{1b}`), cut to at
/// most `max_chars` characters of the original (an ellipsis says it was cut).
pub fn printable(s: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max_chars * 2));
    for (i, c) in s.chars().enumerate() {
        if i == max_chars {
            out.push('…');
            break;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() || is_invisible_control(c) => {
                out.push_str(&format!("\\u{{{:x}}}", c as u32))
            }
            c => out.push(c),
        }
    }
    out
}

/// Separators and format characters that change how a line reads.
fn is_invisible_control(c: char) -> bool {
    matches!(c,
        '\u{2028}' | '\u{2029}'            // line and paragraph separators
        | '\u{200e}' | '\u{200f}'          // left-to-right and right-to-left marks
        | '\u{202a}'..='\u{202e}'          // embeddings and overrides
        | '\u{2066}'..='\u{2069}'          // isolates
        | '\u{feff}'                       // byte order mark
    )
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn a_forged_log_line_stays_on_its_line() {
        let body = "oops\n2026-12-06T00:00:00Z INFO release: sign-in ok login=admin";
        let p = printable(body, 200);
        assert!(!p.contains('\n'));
        assert_eq!(
            p,
            "oops\\n2026-12-06T00:00:00Z INFO release: sign-in ok login=admin"
        );
    }

    #[test]
    fn escapes_terminal_and_bidi_controls_and_cuts() {
        assert_eq!(printable("a\u{1b}[31mb\r\t", 50), "a\\u{1b}[31mb\\r\\t");
        assert_eq!(
            printable("x\u{202e}y\u{2028}z\u{85}", 50),
            "x\\u{202e}y\\u{2028}z\\u{85}"
        );
        assert_eq!(printable("abcdef", 3), "abc…");
        assert_eq!(printable("plain text, ünïcode", 50), "plain text, ünïcode");
        assert_eq!(printable("a\\nb", 50), "a\\\\nb");
    }
}
