//! Java's `.properties` format, as Kafka's tools read `--command-config`: `key=value`,
//! `key: value` or `key value` lines, `#` and `!` comments, `\` at the end of a line continues
//! it, and `\t`, `\n`, `\\`, `\uXXXX` escapes.

/// The `(key, value)` pairs of a properties text, in order.
pub(crate) fn parse(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((number, line)) = lines.next() {
        let mut logical = line.trim_start().to_owned();
        if logical.is_empty() || logical.starts_with('#') || logical.starts_with('!') {
            continue;
        }
        while ends_with_continuation(&logical) {
            let _ = logical.pop();
            match lines.next() {
                Some((_, next)) => logical.push_str(next.trim_start()),
                None => break,
            }
        }
        let (key, value) = split(&logical);
        let key = unescape(key).map_err(|why| format!("line {}: {why}", number + 1))?;
        let value = unescape(value).map_err(|why| format!("line {}: {why}", number + 1))?;
        out.push((key, value));
    }
    Ok(out)
}

/// An odd number of trailing backslashes: the last one escapes the line end.
fn ends_with_continuation(line: &str) -> bool {
    line.chars().rev().take_while(|&c| c == '\\').count() % 2 == 1
}

/// The key ends at the first unescaped `=`, `:` or whitespace; the separator and the blanks
/// around it are dropped.
const BLANK: [char; 3] = [' ', '\t', '\x0c'];

fn split(line: &str) -> (&str, &str) {
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '=' | ':' => return (&line[..i], line[i + 1..].trim_start_matches(BLANK)),
            ' ' | '\t' | '\x0c' => {
                let rest = line[i..].trim_start_matches(BLANK);
                let rest = rest
                    .strip_prefix(['=', ':'])
                    .map_or(rest, |after| after.trim_start_matches(BLANK));
                return (&line[..i], rest);
            }
            _ => {}
        }
    }
    (line, "")
}

fn unescape(text: &str) -> Result<String, String> {
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
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let code = u32::from_str_radix(&hex, 16)
                    .ok()
                    .filter(|_| hex.len() == 4)
                    .and_then(char::from_u32)
                    .ok_or_else(|| format!("bad \\u escape '\\u{hex}'"))?;
                out.push(code);
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn java_properties() {
        let text = "# a comment\n! another\n\nsecurity.protocol=SASL_SSL\n  sasl.mechanism : SCRAM-SHA-256\n\
                    sasl.username alice\nsasl.jaas.config=org.Module required \\\n    username=\"a\" \\\n    password=\"b\";\n\
                    path=C:\\\\certs\\\\ca.pem\nempty=\nuni=\\u0041b\n";
        let parsed = parse(text).unwrap_or_default();
        let pairs: Vec<(&str, &str)> = parsed
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("security.protocol", "SASL_SSL"),
                ("sasl.mechanism", "SCRAM-SHA-256"),
                ("sasl.username", "alice"),
                (
                    "sasl.jaas.config",
                    "org.Module required username=\"a\" password=\"b\";"
                ),
                ("path", "C:\\certs\\ca.pem"),
                ("empty", ""),
                ("uni", "Ab"),
            ]
        );
        assert!(parse("k=\\u00zz").is_err());
    }
}
