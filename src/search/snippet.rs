//! Snippets of search results: the message text (or a window of it around
//! the first hit) with each hit wrapped in `<mark>`…`</mark>` and every
//! other character HTML-escaped, so the markup is the only markup.

use tantivy::tokenizer::TextAnalyzer;

use super::analyzer;

/// Characters of text a snippet shows at most.
pub const SNIPPET_CHARS: usize = 200;
/// Characters shown before the first hit when the text is cut.
const LEAD_CHARS: usize = 40;

/// A normalized query term to highlight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Highlight {
    pub text: String,
    pub prefix: bool,
}

impl Highlight {
    fn matches(&self, term: &str) -> bool {
        if self.prefix {
            term.starts_with(&self.text)
        } else {
            term == self.text
        }
    }
}

/// The snippet of `body` for `highlights`.
pub fn snippet(analyzer: &mut TextAnalyzer, body: &str, highlights: &[Highlight]) -> String {
    // Byte ranges of hits, adjacent ones merged (`東京` is one mark).
    let mut hits: Vec<(usize, usize)> = Vec::new();
    for term in analyzer::terms(analyzer, body) {
        if !highlights.iter().any(|h| h.matches(&term.text)) {
            continue;
        }
        match hits.last_mut() {
            Some(last) if last.1 == term.from => last.1 = term.to,
            _ => hits.push((term.from, term.to)),
        }
    }
    let (start, end) = window(body, hits.first().map(|h| h.0));
    let mut out = String::with_capacity(end - start + 16 * hits.len() + 8);
    if start > 0 {
        out.push('…');
    }
    let mut at = start;
    for &(from, to) in &hits {
        if to <= start || from >= end {
            continue;
        }
        let (from, to) = (from.max(start), to.min(end));
        escape_into(&mut out, &body[at..from]);
        out.push_str("<mark>");
        escape_into(&mut out, &body[from..to]);
        out.push_str("</mark>");
        at = to;
    }
    escape_into(&mut out, &body[at..end]);
    if end < body.len() {
        out.push('…');
    }
    out
}

/// The byte range shown: all of a short text, else [`SNIPPET_CHARS`]
/// starting a little before the first hit.
fn window(body: &str, first_hit: Option<usize>) -> (usize, usize) {
    if body.chars().count() <= SNIPPET_CHARS {
        return (0, body.len());
    }
    let hit = first_hit.unwrap_or(0);
    let lead: Vec<usize> = body[..hit]
        .char_indices()
        .rev()
        .take(LEAD_CHARS)
        .map(|(i, _)| i)
        .collect();
    let mut start = lead.last().copied().unwrap_or(hit);
    if start > 0 {
        // Start at a word boundary when one is near.
        if let Some(space) = body[start..hit].find(char::is_whitespace) {
            start += space + 1;
        }
    }
    let end = body[start..]
        .char_indices()
        .nth(SNIPPET_CHARS)
        .map_or(body.len(), |(i, _)| start + i);
    (start, end)
}

/// Appends `text` with `& < > " '` escaped.
pub fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(text: &str, prefix: bool) -> Highlight {
        Highlight {
            text: text.into(),
            prefix,
        }
    }

    #[test]
    fn marks_hits_and_escapes_the_rest() {
        let mut a = analyzer::analyzer();
        assert_eq!(
            snippet(&mut a, "<b>Deploy</b> & deployed", &[h("deploy", false)]),
            "&lt;b&gt;<mark>Deploy</mark>&lt;/b&gt; &amp; deployed"
        );
        assert_eq!(
            snippet(&mut a, "Le café \"x\"", &[h("cafe", false)]),
            "Le <mark>café</mark> &quot;x&quot;"
        );
        assert_eq!(
            snippet(&mut a, "deploying now", &[h("deplo", true)]),
            "<mark>deploying</mark> now"
        );
        assert_eq!(
            snippet(&mut a, "行く東京へ", &[h("東", false), h("京", false)]),
            "行く<mark>東京</mark>へ"
        );
    }

    #[test]
    fn long_text_is_cut_around_the_first_hit() {
        let mut a = analyzer::analyzer();
        let body = format!("{} needle {}", "hay ".repeat(200), "straw ".repeat(200));
        let s = snippet(&mut a, &body, &[h("needle", false)]);
        assert!(s.starts_with('…') && s.ends_with('…'));
        assert!(s.contains("<mark>needle</mark>"));
        assert!(s.chars().count() < SNIPPET_CHARS + 20);
    }
}
