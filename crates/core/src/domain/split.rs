//! Splitting a bot reply into messages WhatsApp will accept.
//!
//! WhatsApp refuses text messages longer than 4,096 characters, and a refused message is a reply
//! the customer never sees. Bitrix24 does not split for us, so the worker posts a long reply as
//! several messages, cut where a reader would pause: a paragraph break, else a line break, else
//! the end of a sentence, else a space; only a reply with no whitespace at all is cut mid-word.
//!
//! The limit counts Unicode scalar values (`char`s), not bytes: WhatsApp's limit is in characters,
//! and a byte limit would cut Russian, Hindi or Arabic replies at a half or a third of the length
//! (each of their letters is 2–3 bytes in UTF-8) and could cut inside a letter. Counting scalars is
//! the closest cheap measure; a grapheme cluster made of several scalars (a flag, a family emoji)
//! may still be split between two messages when a reply has no whitespace to cut at.
//!
//! A boundary is used only when it leaves at least half the limit in the chunk, so one early
//! paragraph break does not produce a string of tiny messages. Chunk edges are trimmed and empty
//! chunks dropped; nothing but whitespace at the cut points is ever removed.

/// WhatsApp's limit for one text message, in characters.
pub const WHATSAPP_MAX_CHARS: usize = 4096;

/// Splits `text` into trimmed, non-empty chunks of at most `max_chars` characters (a `max_chars`
/// of 0 is treated as 1). Empty or whitespace-only text gives no chunk.
pub fn split_reply(text: &str, max_chars: usize) -> Vec<String> {
    let max = max_chars.max(1);
    let mut chunks = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let Some((limit_byte, _)) = rest.char_indices().nth(max) else {
            chunks.push(rest.to_owned());
            break;
        };
        let window = &rest[..limit_byte];
        let cut = best_cut(window, rest, max);
        let chunk = rest[..cut].trim_end();
        if !chunk.is_empty() {
            chunks.push(chunk.to_owned());
        }
        rest = rest[cut..].trim_start();
    }
    chunks
}

/// The byte offset to cut `rest` at: the end of the best boundary inside `window` (the first
/// `max` characters), or the window's end when there is none.
fn best_cut(window: &str, rest: &str, max: usize) -> usize {
    let min_chars = max / 2;
    let long_enough = |byte: usize| window[..byte].chars().count() >= min_chars.max(1);
    // Cut after the boundary's whitespace so it goes to neither chunk.
    let paragraph = window.rfind("\n\n").map(|i| i + 2);
    let line = window.rfind('\n').map(|i| i + 1);
    let sentence = last_sentence_end(window, rest);
    for candidate in [paragraph, line, sentence].into_iter().flatten() {
        if long_enough(candidate) {
            return candidate;
        }
    }
    // A space anywhere (even early) beats cutting a word; the whitespace right after the window
    // counts too, as the window then ends on a whole word.
    if rest[window.len()..].starts_with(char::is_whitespace) {
        return window.len();
    }
    if let Some((i, c)) = window.char_indices().rev().find(|(_, c)| c.is_whitespace())
        && i > 0
    {
        return i + c.len_utf8();
    }
    window.len()
}

/// The offset just after the last sentence end in `window`: a `.`, `!`, `?`, `…`, `。`, `।`, `؟`
/// followed by whitespace (looking one character past the window's end, in `rest`).
fn last_sentence_end(window: &str, rest: &str) -> Option<usize> {
    window
        .char_indices()
        .rev()
        .filter(|(_, c)| matches!(c, '.' | '!' | '?' | '…' | '。' | '！' | '？' | '।' | '؟'))
        .map(|(i, c)| i + c.len_utf8())
        .find(|&end| rest[end..].starts_with(char::is_whitespace) || matches!(rest[..end].chars().last(), Some('。' | '！' | '？')))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn non_ws(s: &str) -> String {
        s.chars().filter(|c| !c.is_whitespace()).collect()
    }

    #[test]
    fn short_text_is_one_trimmed_chunk_and_blank_is_none() {
        assert_eq!(split_reply("  hello \n", 10), vec!["hello"]);
        assert!(split_reply(" \n\t ", 10).is_empty());
        assert!(split_reply("", 10).is_empty());
    }

    #[test]
    fn prefers_paragraph_then_line_then_sentence_then_word() {
        assert_eq!(split_reply("aaaa bbbb.\n\ncccc dddd", 16), vec!["aaaa bbbb.", "cccc dddd"]);
        assert_eq!(split_reply("aaaa. bbbb\ncccc dddd", 16), vec!["aaaa. bbbb", "cccc dddd"]);
        assert_eq!(split_reply("aa bb. cc dd ee ff", 12), vec!["aa bb.", "cc dd ee ff"]);
        assert_eq!(split_reply("aaaa bbbb cccc", 11), vec!["aaaa bbbb", "cccc"]);
        assert_eq!(split_reply("aaaaaaaaaa", 4), vec!["aaaa", "aaaa", "aa"]);
    }

    #[test]
    fn early_boundaries_do_not_make_tiny_chunks() {
        // The paragraph break is at 2 of 20 characters: cut at the last space instead.
        let chunks = split_reply("ab\n\ncdefgh ijklmnop qrstuv", 20);
        assert_eq!(chunks, vec!["ab\n\ncdefgh ijklmnop", "qrstuv"]);
    }

    #[test]
    fn counts_characters_not_bytes() {
        let ru = "привет ".repeat(1000);
        let chunks = split_reply(&ru, WHATSAPP_MAX_CHARS);
        assert_eq!(chunks.len(), 2);
        assert!(chunks.iter().all(|c| c.chars().count() <= WHATSAPP_MAX_CHARS));
        assert_eq!(split_reply("नमस्ते", 2).concat(), "नमस्ते");
        assert_eq!(split_reply("abc", 0), vec!["a", "b", "c"]);
    }

    proptest! {
        #[test]
        fn chunks_fit_and_keep_all_content_in_order(text in "(\\PC|[ \\n.!?]){0,300}", max in 1usize..60) {
            let chunks = split_reply(&text, max);
            for c in &chunks {
                prop_assert!(c.chars().count() <= max);
                prop_assert!(!c.is_empty());
                prop_assert_eq!(c.trim(), c.as_str());
            }
            prop_assert_eq!(non_ws(&chunks.concat()), non_ws(&text));
        }

        #[test]
        fn arbitrary_strings_never_panic(text in any::<String>(), max in 0usize..8) {
            let chunks = split_reply(&text, max);
            prop_assert_eq!(non_ws(&chunks.concat()), non_ws(&text));
        }
    }
}
