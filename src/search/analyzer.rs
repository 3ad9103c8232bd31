//! How message text becomes search terms, the same way for indexing,
//! queries and snippets: words are runs of letters and digits; each CJK
//! ideograph or kana is a term of its own (those scripts do not separate
//! words with spaces, so a query for `東京` is the phrase `東 京`);
//! terms are lower-cased and folded to ASCII where a folding exists
//! (`é` → `e`), and terms over [`MAX_TERM_BYTES`] are dropped.

use tantivy::tokenizer::{
    AsciiFoldingFilter, LowerCaser, RemoveLongFilter, TextAnalyzer, Token, TokenStream, Tokenizer,
};

/// The name the analyzer is registered under in the index.
pub const NAME: &str = "confab";

/// Longest term kept, in bytes.
pub const MAX_TERM_BYTES: usize = 100;

/// The analyzer: [`WordTokenizer`], lower-casing, ASCII folding.
pub fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(WordTokenizer)
        .filter(RemoveLongFilter::limit(MAX_TERM_BYTES))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .build()
}

/// One term of a text: its normalized form and its byte range in the text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Term {
    pub text: String,
    pub from: usize,
    pub to: usize,
}

/// The terms of `text`, in order.
pub fn terms(analyzer: &mut TextAnalyzer, text: &str) -> Vec<Term> {
    let mut out = Vec::new();
    let mut stream = analyzer.token_stream(text);
    while let Some(token) = stream.next() {
        out.push(Term {
            text: token.text.clone(),
            from: token.offset_from,
            to: token.offset_to,
        });
    }
    out
}

/// Whether `c` is written without spaces between words (Han ideographs,
/// hiragana, katakana), so it is indexed one character per term.
fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF       // hiragana, katakana
        | 0x31F0..=0x31FF     // katakana phonetic extensions
        | 0x3400..=0x4DBF     // CJK extension A
        | 0x4E00..=0x9FFF     // CJK unified ideographs
        | 0xF900..=0xFAFF     // CJK compatibility ideographs
        | 0xFF66..=0xFF9F     // half-width katakana
        | 0x20000..=0x3134F   // CJK extensions B to G
    )
}

/// Part of a word: letters, digits, and combining marks (a decomposed `é`).
fn is_word(c: char) -> bool {
    c.is_alphanumeric() || matches!(c as u32, 0x0300..=0x036F)
}

/// Splits text into words and single CJK characters.
#[derive(Clone, Copy, Debug, Default)]
pub struct WordTokenizer;

/// The stream of [`WordTokenizer`].
pub struct WordStream<'a> {
    text: &'a str,
    at: usize,
    token: Token,
}

impl Tokenizer for WordTokenizer {
    type TokenStream<'a> = WordStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> WordStream<'a> {
        WordStream {
            text,
            at: 0,
            token: Token {
                position: usize::MAX,
                ..Token::default()
            },
        }
    }
}

impl TokenStream for WordStream<'_> {
    fn advance(&mut self) -> bool {
        let rest = &self.text[self.at..];
        let mut chars = rest.char_indices();
        // Skip separators.
        let start = loop {
            match chars.next() {
                None => {
                    self.at = self.text.len();
                    return false;
                }
                Some((i, c)) if is_cjk(c) => {
                    let from = self.at + i;
                    let to = from + c.len_utf8();
                    self.emit(from, to);
                    return true;
                }
                Some((i, c)) if is_word(c) => break self.at + i,
                Some(_) => {}
            }
        };
        let mut end = self.text.len();
        for (i, c) in chars {
            if !is_word(c) || is_cjk(c) {
                end = self.at + i;
                break;
            }
        }
        self.emit(start, end);
        true
    }

    fn token(&self) -> &Token {
        &self.token
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.token
    }
}

impl WordStream<'_> {
    fn emit(&mut self, from: usize, to: usize) {
        self.token.position = self.token.position.wrapping_add(1);
        self.token.offset_from = from;
        self.token.offset_to = to;
        self.token.text.clear();
        self.token.text.push_str(&self.text[from..to]);
        self.at = to;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(text: &str) -> Vec<String> {
        terms(&mut analyzer(), text)
            .into_iter()
            .map(|t| t.text)
            .collect()
    }

    #[test]
    fn words_are_lowered_and_folded() {
        assert_eq!(
            texts("Déployé le CAFÉ, v2.1!"),
            ["deploye", "le", "cafe", "v2", "1"]
        );
    }

    #[test]
    fn cjk_is_one_term_per_character() {
        assert_eq!(
            texts("東京タワーへ go"),
            ["東", "京", "タ", "ワ", "ー", "へ", "go"]
        );
        assert_eq!(texts("ab東c"), ["ab", "東", "c"]);
    }

    #[test]
    fn offsets_point_into_the_text() {
        let text = "Ça va, 東京?";
        for term in terms(&mut analyzer(), text) {
            assert!(text.is_char_boundary(term.from) && text.is_char_boundary(term.to));
        }
        let found = terms(&mut analyzer(), text);
        assert_eq!(&text[found[0].from..found[0].to], "Ça");
        assert_eq!(&text[found[3].from..found[3].to], "京");
    }
}
