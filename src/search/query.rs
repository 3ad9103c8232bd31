//! The search query language (api.md §5): words (all must match), `word*`
//! (prefix), `"quoted phrase"`, `from:USERNAME`, `in:ROOM`. Parsing only
//! checks the syntax; what the words mean is decided by the analyzer.

/// Longest query accepted, in characters.
pub const MAX_QUERY_CHARS: usize = 256;

/// One text condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Clause {
    /// A word; with `prefix`, any word starting with it.
    Word { text: String, prefix: bool },
    /// Words that must appear in this order, next to each other.
    Phrase(String),
}

/// A parsed query.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    pub clauses: Vec<Clause>,
    /// Usernames from `from:` (any of them).
    pub from: Vec<String>,
    /// Room names from `in:` (any of them).
    pub rooms: Vec<String>,
}

/// Parses `q`; the error is the reason shown under `errors.q`.
pub fn parse(q: &str) -> Result<Parsed, String> {
    if q.trim().is_empty() {
        return Err("can't be blank".into());
    }
    if q.chars().count() > MAX_QUERY_CHARS {
        return Err(format!("must be at most {MAX_QUERY_CHARS} characters"));
    }
    let mut parsed = Parsed::default();
    let mut rest = q;
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            break;
        }
        if let Some(after) = rest.strip_prefix('"') {
            let Some(end) = after.find('"') else {
                return Err("has an unbalanced quote".into());
            };
            let phrase = &after[..end];
            if phrase.trim().is_empty() {
                return Err("has an empty quoted phrase".into());
            }
            parsed.clauses.push(Clause::Phrase(phrase.to_string()));
            rest = &after[end + 1..];
            continue;
        }
        let end = rest
            .find(|c: char| c.is_whitespace() || c == '"')
            .unwrap_or(rest.len());
        let word = &rest[..end];
        rest = &rest[end..];
        if let Some(value) = strip_prefix_ci(word, "from:") {
            let name = value.trim_start_matches('@');
            if name.is_empty() {
                return Err("from: needs a username".into());
            }
            parsed.from.push(name.to_lowercase());
        } else if let Some(value) = strip_prefix_ci(word, "in:") {
            let name = value.trim_start_matches('#');
            if name.is_empty() {
                return Err("in: needs a room name".into());
            }
            parsed.rooms.push(name.to_lowercase());
        } else if let Some(stem) = word.strip_suffix('*') {
            if stem.is_empty() || stem.ends_with('*') {
                return Err("a * must follow the start of a word".into());
            }
            parsed.clauses.push(Clause::Word {
                text: stem.to_string(),
                prefix: true,
            });
        } else {
            parsed.clauses.push(Clause::Word {
                text: word.to_string(),
                prefix: false,
            });
        }
    }
    Ok(parsed)
}

fn strip_prefix_ci<'a>(word: &'a str, prefix: &str) -> Option<&'a str> {
    let head = word.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &word[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(text: &str, prefix: bool) -> Clause {
        Clause::Word {
            text: text.into(),
            prefix,
        }
    }

    #[test]
    fn parses_every_form() {
        let p = parse(r#"deplo* "blue green" From:Ada in:#dev café"#).unwrap();
        assert_eq!(
            p.clauses,
            vec![
                word("deplo", true),
                Clause::Phrase("blue green".into()),
                word("café", false)
            ]
        );
        assert_eq!(p.from, ["ada"]);
        assert_eq!(p.rooms, ["dev"]);
    }

    #[test]
    fn filters_alone_are_a_query() {
        let p = parse("from:ada").unwrap();
        assert!(p.clauses.is_empty());
        assert_eq!(p.from, ["ada"]);
    }

    #[test]
    fn refuses_bad_syntax() {
        for q in [
            "", "   ", "\"open", "a \"b", "from:", "in:", "in:#", "*", "a**", "\"\"",
        ] {
            assert!(parse(q).is_err(), "{q:?} should be refused");
        }
        assert!(parse(&"a".repeat(MAX_QUERY_CHARS + 1)).is_err());
        assert!(parse(&"é".repeat(MAX_QUERY_CHARS)).is_ok());
    }
}
