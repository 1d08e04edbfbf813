//! Java properties text, as `java.util.Properties.load` reads `server.properties`, and
//! `--override KEY=VALUE` strings.
//!
//! Lines are `key=value`, `key: value` or `key value`; `#` and `!` start comment lines; blank
//! lines are skipped; a line ending in an odd number of backslashes continues on the next;
//! `\t`, `\n`, `\r`, `\f`, `\uXXXX` and `\<char>` are escapes. Unlike Java, values are trimmed
//! at the end too (Kafka trims them when it parses them anyway), and a leading byte-order mark
//! is skipped.

use super::error::ConfigError;

/// Whitespace that separates a key from its value, as Java defines it.
const BLANKS: [char; 3] = [' ', '\t', '\x0c'];

/// One entry, with the line it starts on for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Property {
    /// The key, unescaped.
    pub(crate) key: String,
    /// The value, unescaped and trimmed.
    pub(crate) value: String,
    /// 1-based line where the entry starts.
    pub(crate) line: usize,
}

/// Parses a properties text into its entries, in file order (duplicates included).
pub(crate) fn parse(text: &str) -> Result<Vec<Property>, ConfigError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    logical_lines(text)
        .into_iter()
        .map(|(line, body)| entry(line, &body))
        .collect()
}

/// Parses `--override KEY=VALUE`: split at the first `=`, both sides trimmed.
pub(crate) fn parse_override(text: &str) -> Result<(String, String), ConfigError> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_owned(), value.trim().to_owned()))
        }
        _ => Err(ConfigError::BadOverride {
            text: text.to_owned(),
        }),
    }
}

/// Joins continued lines and drops comments and blank lines; each logical line comes with the
/// number of the line it starts on.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim_start_matches(BLANKS);
        let (continues, body) = strip_continuation(line);
        match &mut pending {
            Some((_, joined)) => joined.push_str(body),
            // A comment never continues, even when it ends in a backslash.
            None if line.is_empty() || line.starts_with(['#', '!']) => continue,
            None => pending = Some((index + 1, body.to_owned())),
        }
        if !continues {
            out.extend(pending.take());
        }
    }
    out.extend(pending);
    out
}

/// A line ending in an odd number of backslashes continues on the next; an even number are
/// escaped backslashes.
fn strip_continuation(line: &str) -> (bool, &str) {
    let backslashes = line.len() - line.trim_end_matches('\\').len();
    if backslashes % 2 == 1 {
        (true, &line[..line.len() - 1])
    } else {
        (false, line)
    }
}

/// Splits a logical line at the first unescaped `=`, `:` or blank, as Java does.
fn entry(line: usize, body: &str) -> Result<Property, ConfigError> {
    let (key, value) = split_entry(body);
    let key = unescape(key, line)?;
    if key.is_empty() {
        let reason = "no key before the separator".to_owned();
        return Err(ConfigError::Syntax { line, reason });
    }
    let value = unescape(value, line)?.trim().to_owned();
    Ok(Property { key, value, line })
}

fn split_entry(body: &str) -> (&str, &str) {
    let bytes = body.as_bytes();
    let mut end = 0;
    while end < bytes.len() {
        match bytes[end] {
            b'\\' => end += 2,
            b'=' | b':' | b' ' | b'\t' | b'\x0c' => break,
            _ => end += 1,
        }
    }
    // Only an ASCII separator stops the scan, so `end` is a char boundary or past the end.
    let end = end.min(bytes.len());
    let rest = body[end..].trim_start_matches(BLANKS);
    let rest = rest.strip_prefix(['=', ':']).unwrap_or(rest);
    (&body[..end], rest.trim_start_matches(BLANKS))
}

/// Resolves Java's escapes.
fn unescape(text: &str, line: usize) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\x0c'),
            Some('u') => out.push(unicode_escape(&mut chars, line)?),
            Some(other) => out.push(other),
            None => {}
        }
    }
    Ok(out)
}

/// The four hex digits after `\u`.
fn unicode_escape(chars: &mut std::str::Chars<'_>, line: usize) -> Result<char, ConfigError> {
    let digits: String = chars.by_ref().take(4).collect();
    let code = u32::from_str_radix(&digits, 16)
        .ok()
        .filter(|_| digits.len() == 4);
    code.and_then(char::from_u32)
        .ok_or_else(|| ConfigError::Syntax {
            line,
            reason: format!(
                "malformed \\u{digits} escape (a surrogate pair is not supported: the file is read \
             as UTF-8, so write the character itself)"
            ),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(String, String)> {
        parse(text)
            .unwrap()
            .into_iter()
            .map(|p| (p.key, p.value))
            .collect()
    }

    fn pair(k: &str, v: &str) -> (String, String) {
        (k.to_owned(), v.to_owned())
    }

    #[test]
    fn separators_comments_and_blank_lines() {
        let text =
            "# comment\n! also a comment\n\n   \na=1\nb : 2\nc 3\n  d=4  \ne\nf==x\r\ng=h=i\n";
        assert_eq!(
            pairs(text),
            [
                pair("a", "1"),
                pair("b", "2"),
                pair("c", "3"),
                pair("d", "4"),
                pair("e", ""),
                pair("f", "=x"),
                pair("g", "h=i"),
            ]
        );
    }

    #[test]
    fn line_numbers_point_at_the_entry() {
        let props = parse("# x\n\na=1\nb=\\\n  2\nc=3").unwrap();
        let lines: Vec<_> = props.iter().map(|p| (p.key.as_str(), p.line)).collect();
        assert_eq!(lines, [("a", 3), ("b", 4), ("c", 6)]);
    }

    #[test]
    fn continuations_join_lines_and_drop_leading_blanks() {
        let text = "list=a,\\\n    b,\\\n    c\nescaped=ends\\\\\nnext=1\n#comment\\\nafter=2";
        assert_eq!(
            pairs(text),
            [
                pair("list", "a,b,c"),
                pair("escaped", "ends\\"),
                pair("next", "1"),
                pair("after", "2")
            ]
        );
        assert_eq!(pairs("a=b\\"), [pair("a", "b")]);
    }

    #[test]
    fn escapes() {
        let text = "k\\=ey=v\\:al\\tue\nu=\\u0041\\u00e9\nspace\\ key=x";
        assert_eq!(
            pairs(text),
            [
                pair("k=ey", "v:al\tue"),
                pair("u", "Aé"),
                pair("space key", "x")
            ]
        );
        for bad in ["u=\\u00", "u=\\uzzzz", "u=\\uD83D\\uDE00"] {
            assert!(
                matches!(parse(bad), Err(ConfigError::Syntax { line: 1, .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_missing_key_is_a_syntax_error() {
        let err = parse("a=1\n=2").unwrap_err();
        assert!(matches!(err, ConfigError::Syntax { line: 2, .. }), "{err}");
    }

    #[test]
    fn byte_order_mark_and_non_ascii_are_fine() {
        assert_eq!(pairs("\u{feff}k=v"), [pair("k", "v")]);
        assert_eq!(pairs("k\\é=v"), [pair("ké", "v")]);
    }

    #[test]
    fn overrides_split_at_the_first_equals() {
        assert_eq!(parse_override(" a.b = c=d "), Ok(pair("a.b", "c=d")));
        assert_eq!(parse_override("a="), Ok(pair("a", "")));
        for bad in ["a", "=b", " =b"] {
            assert!(
                matches!(parse_override(bad), Err(ConfigError::BadOverride { .. })),
                "{bad}"
            );
        }
    }
}
