//! Splitting a bot reply into messages WhatsApp will accept.
//!
//! WhatsApp refuses text messages longer than 4,096 characters, and a refused message is a reply
//! the customer never sees. Bitrix24 does not split for us, so the worker posts a long reply as
//! several messages, cut where a reader would pause: a paragraph break, else a line break, else
//! the end of a sentence, else a space; only a reply with no whitespace at all is cut mid-word.
//!
//! # What "4,096 characters" counts, and why we count UTF-16 code units
//! No source says which unit the limit is in:
//! - Meta's Cloud API reference for the text object says only "Maximum 4096 characters" (the
//!   `text.body` parameter of `POST /<PHONE_NUMBER_ID>/messages`); 360dialog ("A text message can
//!   be a maximum of 4096 characters long") and Vonage ("4096 Zeichen, einschließlich Unicode")
//!   repeat it without a unit.
//! - The Edna connector Bitrix24 uses for WhatsApp (`imconnector/lib/connectors/whatsappbyedna.php`
//!   in the Bitrix24 core sources) neither splits nor truncates: `sendMessageProcessing` only turns
//!   `:)`-style smileys into emoji (`convertSmiles`) and strips BB codes (`cleanTextOut`) before
//!   handing the text on. Edna's public API docs give no text limit of their own.
//! - Client libraries disagree: `whatsapp-api-js` refuses `body.length > 4096`, which in
//!   JavaScript counts UTF-16 code units; Go and Python wrappers count code points.
//!
//! So we take the measure that cannot exceed the limit under any plausible counting: UTF-16 code
//! units. A code point is one or two units, a grapheme cluster one or more code points, so a chunk
//! within 4,096 units is within 4,096 by every count a platform could mean by "characters"
//! (graphemes, code points, or Java/JavaScript string length). Five thousand emoji are 10,000 units
//! and go out as three messages, not as two of 8,192 units that a UTF-16 count would refuse. The
//! connector's rewrites never lengthen a text by this measure (`:)` becomes one astral emoji: two
//! units for two; `[url=X]t[/url]` becomes `t: X`). A byte limit is not plausible (the limit is
//! documented in characters, Unicode included) and would cut Hindi or Arabic replies at a third.
//!
//! A cut falls only between grapheme clusters (UAX #29, extended), so a flag, a family emoji, a
//! skin-toned thumb or a Devanagari conjunct with its vowel signs is never torn in two; only a
//! single cluster longer than the whole limit (abuse, not language) is cut between code points.
//! A code point is never split, so no lone surrogate can reach the connector. BB-code tags are not
//! protected: a `[url=…]…[/url]` cut across two messages reaches WhatsApp as raw tags.
//!
//! A boundary is used only when it leaves at least half the limit in the chunk, so one early
//! paragraph break does not produce a string of tiny messages. Chunk edges are trimmed and empty
//! chunks dropped; nothing but whitespace at the cut points is ever removed.

use unicode_segmentation::UnicodeSegmentation;

/// WhatsApp's limit for one text message: 4,096 "characters", counted here as UTF-16 code units
/// (the conservative reading; see the module docs).
pub const WHATSAPP_MAX_CHARS: usize = 4096;

/// The length of `text` in UTF-16 code units (the measure the splitter limits).
pub fn utf16_len(text: &str) -> usize {
    text.chars().map(char::len_utf16).sum()
}

/// Splits `text` into trimmed, non-empty chunks of at most `max_units` UTF-16 code units each (a
/// `max_units` below 2 is treated as 2: one code point may need two). Empty or whitespace-only
/// text gives no chunk.
pub fn split_reply(text: &str, max_units: usize) -> Vec<String> {
    pieces(text, max_units).into_iter().map(|(start, end)| text[start..end].trim_end()).filter(|c| !c.is_empty()).map(str::to_owned).collect()
}

/// The byte ranges of `text` that become chunks, before their ends are trimmed: each starts at a
/// non-whitespace character and ends at the cut.
fn pieces(text: &str, max_units: usize) -> Vec<(usize, usize)> {
    let max = max_units.max(2);
    let mut out = Vec::new();
    let mut pos = 0;
    loop {
        let rest = &text[pos..];
        let start = pos + (rest.len() - rest.trim_start().len());
        let rest = &text[start..];
        if rest.is_empty() {
            return out;
        }
        let window = Window::of(rest, max);
        if window.end == rest.len() {
            out.push((start, text.len()));
            return out;
        }
        let cut = best_cut(&window, rest, max);
        out.push((start, start + cut));
        pos = start + cut;
    }
}

/// The longest prefix of a chunk's text that fits, and the grapheme boundaries inside it.
struct Window {
    /// Byte length of the prefix.
    end: usize,
    /// Byte offsets where a cut keeps every grapheme cluster whole (sorted; `end` included).
    boundaries: Vec<usize>,
}

impl Window {
    fn of(rest: &str, max: usize) -> Self {
        let mut units = 0;
        let mut boundaries = Vec::new();
        for (i, cluster) in rest.grapheme_indices(true) {
            let n = utf16_len(cluster);
            if units + n > max {
                if i == 0 {
                    // One cluster longer than the limit: cut it between code points.
                    return Self::scalars(rest, max);
                }
                boundaries.push(i);
                return Self { end: i, boundaries };
            }
            if i > 0 {
                boundaries.push(i);
            }
            units += n;
        }
        boundaries.push(rest.len());
        Self { end: rest.len(), boundaries }
    }

    fn scalars(rest: &str, max: usize) -> Self {
        let mut units = 0;
        let mut end = 0;
        for (i, c) in rest.char_indices() {
            if units + c.len_utf16() > max {
                break;
            }
            units += c.len_utf16();
            end = i + c.len_utf8();
        }
        Self { end, boundaries: vec![end] }
    }

    fn is_boundary(&self, byte: usize) -> bool {
        self.boundaries.binary_search(&byte).is_ok()
    }
}

/// The byte offset to cut `rest` at: the end of the best boundary inside the window, or the
/// window's end when there is none.
fn best_cut(window: &Window, rest: &str, max: usize) -> usize {
    let text = &rest[..window.end];
    let min_units = (max / 2).max(1);
    let long_enough = |byte: usize| utf16_len(&text[..byte]) >= min_units;
    // Cut after the boundary's whitespace so it goes to neither chunk. A line feed always ends a
    // grapheme cluster, so the first two candidates are boundaries.
    let paragraph = text.rfind("\n\n").map(|i| i + 2);
    let line = text.rfind('\n').map(|i| i + 1);
    let sentence = last_sentence_end(window, rest);
    for candidate in [paragraph, line, sentence].into_iter().flatten() {
        if long_enough(candidate) {
            return candidate;
        }
    }
    // A space anywhere (even early) beats cutting a word; the whitespace right after the window
    // counts too, as the window then ends on a whole word.
    if rest[window.end..].starts_with(char::is_whitespace) {
        return window.end;
    }
    if let Some(cut) = text.char_indices().rev().filter(|(_, c)| c.is_whitespace()).map(|(i, c)| i + c.len_utf8()).find(|&cut| window.is_boundary(cut)) {
        return cut;
    }
    window.end
}

/// The offset just after the last sentence end in the window: a `.`, `!`, `?`, `…`, `。`, `।`, `؟`
/// followed by whitespace (looking one character past the window's end, in `rest`), at a grapheme
/// boundary.
fn last_sentence_end(window: &Window, rest: &str) -> Option<usize> {
    rest[..window.end]
        .char_indices()
        .rev()
        .filter(|(_, c)| matches!(c, '.' | '!' | '?' | '…' | '。' | '！' | '？' | '।' | '؟'))
        .map(|(i, c)| i + c.len_utf8())
        .filter(|&end| window.is_boundary(end))
        .find(|&end| rest[end..].starts_with(char::is_whitespace) || matches!(rest[..end].chars().last(), Some('。' | '！' | '？')))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn non_ws(s: &str) -> String {
        s.chars().filter(|c| !c.is_whitespace()).collect()
    }

    /// Checks the whole contract on one input: every chunk fits, is trimmed and non-empty; every
    /// cut keeps grapheme clusters whole (unless one cluster alone is over the limit); and the
    /// chunks are the text in order, with only whitespace left out between them.
    fn check(text: &str, max: usize) -> Result<Vec<String>, TestCaseError> {
        let chunks = split_reply(text, max);
        let max = max.max(2);
        for c in &chunks {
            prop_assert!(utf16_len(c) <= max, "{} units over {max}", utf16_len(c));
            prop_assert!(!c.is_empty());
            prop_assert_eq!(c.trim(), c.as_str());
        }
        let boundaries: Vec<usize> = text.grapheme_indices(true).map(|(i, _)| i).chain([text.len()]).collect();
        let mut prev = 0;
        let ranges = pieces(text, max);
        for &(start, end) in &ranges {
            prop_assert!(text[prev..start].chars().all(char::is_whitespace), "non-whitespace dropped before {start}");
            if let Err(i) = boundaries.binary_search(&end) {
                // Inside the cluster boundaries[i - 1]..boundaries[i]: only allowed when it is too long.
                let cluster = &text[boundaries[i - 1]..boundaries[i]];
                prop_assert!(utf16_len(cluster) > max, "cut at {end} tears the cluster {cluster:?}");
            }
            prev = end;
        }
        prop_assert!(text[prev..].chars().all(char::is_whitespace));
        let kept: Vec<&str> = ranges.iter().map(|&(s, e)| text[s..e].trim_end()).filter(|c| !c.is_empty()).collect();
        prop_assert_eq!(&kept, &chunks);
        prop_assert_eq!(non_ws(&chunks.concat()), non_ws(text));
        Ok(chunks)
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
    fn counts_utf16_units_not_bytes() {
        let ru = "привет ".repeat(1000);
        let chunks = split_reply(&ru, WHATSAPP_MAX_CHARS);
        assert_eq!(chunks.len(), 2);
        assert!(chunks.iter().all(|c| utf16_len(c) <= WHATSAPP_MAX_CHARS));
        assert_eq!(split_reply("नमस्ते", 2).concat(), "नमस्ते");
        assert_eq!(split_reply("abc", 0), vec!["ab", "c"], "below 2 counts as 2");
    }

    #[test]
    fn five_thousand_emoji_fit_by_utf16_count() {
        let text = "😀".repeat(5000);
        let chunks = check(&text, WHATSAPP_MAX_CHARS).expect("contract");
        // 10,000 units: three messages (2,048 + 2,048 + 904 emoji), not two of 8,192 units.
        assert_eq!(chunks.iter().map(|c| c.chars().count()).collect::<Vec<_>>(), vec![2048, 2048, 904]);
        assert!(chunks.iter().all(|c| c.encode_utf16().count() <= 4096));
        assert!(chunks.concat() == text);
    }

    #[test]
    fn mixed_scripts_are_cut_between_whole_clusters() {
        let family = "👨\u{200D}👩\u{200D}👧\u{200D}👦"; // 11 units, one cluster
        let flags = "🇺🇦🇮🇳🇧🇷"; // three clusters of 4 units
        let hindi = "क्षत्रिय हिन्दी"; // conjuncts with virama and vowel signs
        let thumbs = "👍🏽";
        let spaced = format!("Привет, {hindi} {family} {flags} {thumbs} مرحبا. ").repeat(300);
        let packed = format!("Привет{}{family}{flags}{thumbs}مرحبا", hindi.replace(' ', "")).repeat(300);
        for text in [&spaced, &packed] {
            let chunks = check(text, WHATSAPP_MAX_CHARS).expect("contract");
            assert!(chunks.len() > 1);
        }
        // No whitespace at all: the cuts fall between clusters and nothing is lost.
        let chunks = check(&packed, WHATSAPP_MAX_CHARS).expect("contract");
        assert!(chunks.concat() == packed, "nothing is lost when there is no whitespace to drop");
        for limit in [11, 12, 21, 23] {
            let chunks = check(&family.repeat(7), limit).expect("contract");
            assert!(chunks.iter().all(|c| c.graphemes(true).all(|g| g == family)), "{limit}: {chunks:?}");
        }
        // Under 11 units the family cannot fit whole: it is cut between code points, losing none.
        assert_eq!(check(family, 5).expect("contract").concat(), family);
        // A cluster longer than the limit is cut between code points, never inside one.
        let zalgo = format!("a{}", "\u{301}".repeat(20));
        let chunks = check(&zalgo, 8).expect("contract");
        assert_eq!(chunks.concat(), zalgo);
        assert_eq!(check(&"🇺🇦".repeat(3), 3).expect("contract"), vec!["🇺", "🇦", "🇺", "🇦", "🇺", "🇦"]);
    }

    fn piece() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => "\\PC".prop_map(|s: String| s),
            2 => "[ \\n.!?。]".prop_map(|s: String| s),
            1 => Just("👨\u{200D}👩\u{200D}👧".to_owned()),
            1 => Just("🇺🇦".to_owned()),
            1 => Just("👍🏽".to_owned()),
            1 => Just("क्षि".to_owned()),
            1 => Just("😀".to_owned()),
            1 => Just("\r\n".to_owned()),
            1 => Just("e\u{301}".to_owned()),
        ]
    }

    proptest! {
        #[test]
        fn chunks_fit_keep_clusters_and_all_content_in_order(parts in prop::collection::vec(piece(), 0..200), max in 1usize..60) {
            check(&parts.concat(), max)?;
        }

        #[test]
        fn arbitrary_strings_never_panic(text in any::<String>(), max in 0usize..8) {
            check(&text, max)?;
        }
    }
}
