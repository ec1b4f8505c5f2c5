//! Helpers of `wqctl session`: splitting a command line into words, JSON strings.

/// Splits one session line into words, as a shell would for simple cases.
///
/// Words are separated by blanks; `'...'` and `"..."` quote (no expansion
/// inside), a backslash outside single quotes takes the next character
/// literally, and a `#` at the start of a word starts a comment that runs to
/// the end of the line.  An empty or comment-only line gives no words.
pub fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '#' if !in_word => break,
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err("unterminated ' quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c) => cur.push(c),
                            None => return Err("unterminated \" quote".into()),
                        },
                        Some(c) => cur.push(c),
                        None => return Err("unterminated \" quote".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => cur.push(c),
                    None => return Err("backslash at the end of the line".into()),
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

/// `s` as a JSON string literal (quotes included).
pub fn json_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> Vec<String> {
        split_words(s).unwrap()
    }

    #[test]
    fn words() {
        assert_eq!(
            w("enqueue -q percpu -c 2 -d 5s -n 100"),
            ["enqueue", "-q", "percpu", "-c", "2", "-d", "5s", "-n", "100"]
        );
        assert_eq!(w("  stats  "), ["stats"]);
        assert!(w("").is_empty());
        assert!(w("   # only a comment").is_empty());
        assert_eq!(w("cancel --id 5 # the fifth"), ["cancel", "--id", "5"]);
        assert_eq!(w("a#b"), ["a#b"]);
        assert_eq!(
            w("x 'a b' \"c \\\" d\" e\\ f"),
            ["x", "a b", "c \" d", "e f"]
        );
        assert_eq!(w("''"), [""]);
        assert_eq!(w("mod-delay\t--id 7 0"), ["mod-delay", "--id", "7", "0"]);
        assert!(split_words("'open").is_err());
        assert!(split_words("\"open").is_err());
        assert!(split_words("end\\").is_err());
    }

    #[test]
    fn json_strings() {
        assert_eq!(json_str("plain"), "\"plain\"");
        assert_eq!(json_str("a\"b\\c\nd\u{1}"), "\"a\\\"b\\\\c\\nd\\u0001\"");
    }
}
