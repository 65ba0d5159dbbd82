//! Capping the texts of the conversation history the bot receives.
//!
//! Every bot request carries the chat's last turns, and each stored turn is as long as the
//! customer, the bot or the operator made it: one pasted document or one runaway bot answer would
//! be re-sent with every request of the session. The worker caps each turn's text when it stores
//! it, at a configured number of characters (`OLBRIDGE_HISTORY_TEXT_MAX_CHARS`, default 2,000),
//! which keeps enough for the bot to follow the conversation. The cut falls between grapheme
//! clusters (never inside a letter with its marks or an emoji sequence) and is marked with `…`, so
//! the bot can tell a text was shortened; the result, marker included, is at most the maximum.

use std::borrow::Cow;

use unicode_segmentation::UnicodeSegmentation;

/// The default cap on one history turn's text, in characters (Unicode scalar values).
pub const DEFAULT_HISTORY_TEXT_MAX_CHARS: usize = 2000;

/// Ends a shortened text.
pub const TRUNCATION_MARK: char = '…';

/// `text` if it has at most `max_chars` characters; otherwise its longest prefix of whole grapheme
/// clusters that leaves room for [`TRUNCATION_MARK`], trailing whitespace trimmed, with the mark
/// appended. A `max_chars` of 0 is treated as 1 (the mark alone).
pub fn cap_history_text(text: &str, max_chars: usize) -> Cow<'_, str> {
    let max = max_chars.max(1);
    if text.chars().nth(max).is_none() {
        return Cow::Borrowed(text);
    }
    let budget = max - 1;
    let mut chars = 0;
    let mut end = 0;
    for (i, cluster) in text.grapheme_indices(true) {
        let n = cluster.chars().count();
        if chars + n > budget {
            break;
        }
        chars += n;
        end = i + cluster.len();
    }
    let mut capped = text[..end].trim_end().to_owned();
    capped.push(TRUNCATION_MARK);
    Cow::Owned(capped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn short_texts_are_kept_as_they_are() {
        assert!(matches!(cap_history_text("hello", 5), Cow::Borrowed("hello")));
        assert_eq!(cap_history_text("", 0), "");
        let at_limit = "я".repeat(DEFAULT_HISTORY_TEXT_MAX_CHARS);
        assert_eq!(cap_history_text(&at_limit, DEFAULT_HISTORY_TEXT_MAX_CHARS), at_limit);
    }

    #[test]
    fn long_texts_are_cut_at_the_limit_with_a_mark() {
        let long = "a".repeat(600 * 1024);
        let capped = cap_history_text(&long, DEFAULT_HISTORY_TEXT_MAX_CHARS);
        assert_eq!(capped.chars().count(), DEFAULT_HISTORY_TEXT_MAX_CHARS);
        assert!(capped.ends_with("a…"));
        assert_eq!(cap_history_text("hello world", 7), "hello…", "trailing space trimmed before the mark");
        assert_eq!(cap_history_text("привет", 4), "при…", "characters, not bytes");
        assert_eq!(cap_history_text("abc", 0), "…");
    }

    #[test]
    fn clusters_are_never_torn() {
        let family = "👨\u{200D}👩\u{200D}👧"; // five scalars, one cluster
        assert_eq!(cap_history_text(&format!("ok {family}{family}"), 7), "ok…");
        assert_eq!(cap_history_text(&format!("ok{family}{family}"), 8), format!("ok{family}…"));
        assert_eq!(cap_history_text("नमस्ते दुनिया", 5), "नम…");
    }

    proptest! {
        #[test]
        fn the_cap_holds_and_keeps_a_prefix(text in "\\PC{0,80}", max in 0usize..40) {
            let capped = cap_history_text(&text, max);
            prop_assert!(capped.chars().count() <= max.max(1));
            if text.chars().count() <= max.max(1) {
                prop_assert_eq!(capped.as_ref(), text.as_str());
            } else {
                let kept = capped.strip_suffix(TRUNCATION_MARK).expect("marked");
                prop_assert!(text.starts_with(kept));
            }
        }
    }
}
