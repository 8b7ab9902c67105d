//! Turns a user's search text into something SQLite can run safely: an FTS5
//! match expression for full-text mode, LIKE patterns for substring mode.
//!
//! User text never reaches FTS5 as syntax. Every word is quoted, so `"`, `*`,
//! `-`, `:`, parentheses, `AND`, `OR`, `NOT` and `NEAR` are matched as text
//! (or dropped, as the tokenizer drops punctuation) and can never make a
//! query fail.

/// English words too common to be worth matching. Postgres' `english` text
/// search configuration drops such words from queries; dropping them here
/// keeps the two backends' full-text results alike.
pub const STOP_WORDS: &[&str] = &[
    "a",
    "about",
    "above",
    "after",
    "again",
    "against",
    "all",
    "am",
    "an",
    "and",
    "any",
    "are",
    "as",
    "at",
    "be",
    "because",
    "been",
    "before",
    "being",
    "below",
    "between",
    "both",
    "but",
    "by",
    "can",
    "could",
    "did",
    "do",
    "does",
    "doing",
    "don",
    "down",
    "during",
    "each",
    "few",
    "for",
    "from",
    "further",
    "had",
    "has",
    "have",
    "having",
    "he",
    "her",
    "here",
    "hers",
    "herself",
    "him",
    "himself",
    "his",
    "how",
    "i",
    "if",
    "in",
    "into",
    "is",
    "it",
    "its",
    "itself",
    "just",
    "me",
    "more",
    "most",
    "my",
    "myself",
    "no",
    "nor",
    "not",
    "now",
    "of",
    "off",
    "on",
    "once",
    "only",
    "or",
    "other",
    "our",
    "ours",
    "ourselves",
    "out",
    "over",
    "own",
    "s",
    "same",
    "she",
    "should",
    "so",
    "some",
    "such",
    "than",
    "that",
    "the",
    "their",
    "theirs",
    "them",
    "t",
    "themselves",
    "then",
    "there",
    "these",
    "they",
    "this",
    "those",
    "through",
    "to",
    "too",
    "under",
    "until",
    "up",
    "very",
    "was",
    "we",
    "were",
    "what",
    "when",
    "where",
    "which",
    "while",
    "who",
    "whom",
    "why",
    "will",
    "with",
    "would",
    "you",
    "your",
    "yours",
    "yourself",
    "yourselves",
];

/// The FTS5 phrases of `text`: every word quoted (all are required),
/// English stop words left out unless nothing else remains. `None` when the
/// text holds no word at all (only punctuation), which matches nothing.
pub(super) fn fts_phrases(text: &str) -> Option<Vec<String>> {
    // Splitting on anything the tokenizer would not keep inside a word makes
    // each piece one FTS5 token; punctuation-only pieces vanish here rather
    // than becoming empty phrases.
    let words: Vec<&str> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    if words.is_empty() {
        return None;
    }
    let meaningful: Vec<&str> = words
        .iter()
        .copied()
        .filter(|w| !STOP_WORDS.contains(&w.to_lowercase().as_str()))
        .collect();
    let chosen = if meaningful.is_empty() {
        words
    } else {
        meaningful
    };
    Some(chosen.iter().map(|w| quote(w)).collect())
}

fn quote(word: &str) -> String {
    format!("\"{}\"", word.replace('"', "\"\""))
}

/// The token a namespace is indexed as in the `namespace_key` column: the
/// hex digits of its name, as SQLite's `hex()` writes them (the tokenizer
/// folds the case).
pub(super) fn namespace_key(namespace: &str) -> String {
    namespace.bytes().map(|b| format!("{b:02x}")).collect()
}

/// The MATCH expression of a full-text search: every phrase in the content
/// column, in the rows of one of `namespaces`. The content phrases come
/// first, so they are the expression's phrases 0, 1, ... that
/// `memory_fts_score` ranks by.
pub(super) fn match_in_namespaces(phrases: &[String], namespaces: &[String]) -> String {
    let keys: Vec<String> = namespaces
        .iter()
        .map(|n| quote(&namespace_key(n)))
        .collect();
    format!(
        "{{content}} : ({}) AND {{namespace_key}} : ({})",
        phrases.join(" "),
        keys.join(" OR ")
    )
}

/// Escapes `\`, `%` and `_` for a LIKE pattern written with `ESCAPE '\'`.
fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// LIKE patterns (for `ESCAPE '\'`) that together find `needle` anywhere in
/// a text, ignoring case. SQLite's LIKE folds only ASCII letters, so the
/// needle's lower- and upper-case forms are each matched too; for a
/// one-character needle that covers every case variant.
pub(super) fn substring_patterns(needle: &str) -> Vec<String> {
    let mut variants = vec![
        needle.to_string(),
        needle.to_lowercase(),
        needle.to_uppercase(),
    ];
    variants.sort();
    variants.dedup();
    variants
        .into_iter()
        .map(|v| format!("%{}%", escape_like(&v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phrases(text: &str) -> Option<String> {
        fts_phrases(text).map(|p| p.join(" "))
    }

    #[test]
    fn every_word_is_quoted_and_operators_become_words() {
        assert_eq!(
            phrases("deploy NEAR(prod) OR x*").as_deref(),
            Some(r#""deploy" "NEAR" "prod" "x""#)
        );
    }

    #[test]
    fn stop_words_are_dropped_unless_nothing_else_is_left() {
        assert_eq!(
            phrases("how is the deploy going").as_deref(),
            Some(r#""deploy" "going""#)
        );
        assert_eq!(phrases("the and").as_deref(), Some(r#""the" "and""#));
    }

    #[test]
    fn punctuation_only_text_has_no_expression() {
        assert_eq!(fts_phrases(r#"-- "" () * :"#), None);
    }

    #[test]
    fn namespaces_become_hex_tokens_after_the_content_phrases() {
        assert_eq!(namespace_key("team:a-1"), "7465616d3a612d31");
        assert_eq!(
            match_in_namespaces(
                &[r#""deploy""#.to_string(), r#""prod""#.to_string()],
                &["team:a".to_string(), "org:b".to_string()]
            ),
            r#"{content} : ("deploy" "prod") AND {namespace_key} : ("7465616d3a61" OR "6f72673a62")"#
        );
    }

    #[test]
    fn like_wildcards_and_escape_are_escaped() {
        assert_eq!(substring_patterns("%"), vec![r"%\%%"]);
        assert_eq!(substring_patterns("_"), vec![r"%\_%"]);
        assert_eq!(substring_patterns("\\"), vec![r"%\\%"]);
    }

    #[test]
    fn non_ascii_letters_match_both_cases() {
        assert_eq!(substring_patterns("é"), vec!["%É%", "%é%"]);
    }
}
