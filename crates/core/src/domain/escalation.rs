//! Escalation: the customer asks for a human, in one of several languages.
//!
//! Two rules, both configurable, both reported by name so the log says which one fired:
//! - **Phrase** (`OLBRIDGE_ESCALATION_PHRASES`): fires when a phrase's words appear, in order and
//!   next to each other, as whole words anywhere in the message. "I want to talk to an AGENT!"
//!   fires `agent`; "agentic" and "reagent" do not.
//! - **Lone word** (`OLBRIDGE_ESCALATION_WORDS`): fires only when the whole message is that word,
//!   punctuation, emoji and whitespace aside. The client's roadmap names "help" as an escalation
//!   keyword, yet customers write "help me find my order" to the bot, and escalating that would
//!   send every ordinary question to a human. A message that is only "help", "HELP!", "Help?" or
//!   "помощь." asks for help and nothing else: that is the cry for a person, so it escalates; the
//!   same word inside a sentence is a question for the bot. The defaults hold one such word per
//!   language ([`DEFAULT_WORDS`]). An entry of several words fires when the message is exactly
//!   those words.
//!
//! Both compare text after the same normalisation: lower-cased (Unicode-aware); Latin accents,
//! Russian `ё`, Arabic diacritics, tatweel and letter variants (`أ إ آ` → `ا`, `ى` → `ي`, `ة` → `ه`)
//! and the Devanagari nukta folded; every character that is not a letter, digit or combining mark
//! (so punctuation, symbols, emoji) treated as a space. Whole-word matching has a price in
//! inflected languages: the Russian defaults list the forms people write (`оператор`,
//! `оператора`, `оператору`).
//!
//! The default phrases leave out bare "человек" ("a person"), which Russian uses for counting
//! people ("стол на 4 человек"); "живой человек" and "с человеком" are in instead.
//!
//! A phrase is checked before a lone word, and when several phrases match, the one with the most
//! words is reported ("live agent" rather than "agent"), so the logged rule is the most specific.

/// The configured escalation phrases and lone words, normalised once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EscalationRules {
    /// (phrase as configured, its normalised words), most words first.
    rules: Vec<(String, Vec<String>)>,
    /// (word as configured, its normalised words): fires when the message is exactly these.
    lone: Vec<(String, Vec<String>)>,
}

/// Which rule fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EscalationRule {
    /// A configured phrase appears in the message.
    Phrase,
    /// The message is nothing but a configured lone word.
    LoneWord,
}

impl EscalationRule {
    /// A stable name for the log and metrics (`phrase`, `lone_word`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Phrase => "phrase",
            Self::LoneWord => "lone_word",
        }
    }
}

/// A match: the rule that fired and the phrase or word (as configured) that matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EscalationMatch<'a> {
    /// Phrase or lone word.
    pub rule: EscalationRule,
    /// The phrase or word as configured.
    pub text: &'a str,
}

/// The default lone words: a message that is only one of these asks for a person. One per
/// language of [`DEFAULT_PHRASES`] (Hindi in both scripts).
pub const DEFAULT_WORDS: &[&str] = &["help", "помощь", "मदद", "madad", "مساعدة", "ayuda", "ajuda"];

/// The default phrases: English, Russian, Hindi (Devanagari and romanised), Arabic, Spanish,
/// Portuguese.
pub const DEFAULT_PHRASES: &[&str] = &[
    // English
    "agent",
    "live agent",
    "human",
    "human agent",
    "operator",
    "real person",
    "real human",
    "live person",
    "talk to a person",
    "speak to a person",
    "talk to someone",
    "speak to someone",
    "talk to a human",
    "speak to a human",
    "customer service",
    "customer support",
    "representative",
    // Russian
    "оператор",
    "оператора",
    "оператору",
    "оператором",
    "живой человек",
    "живого человека",
    "живым человеком",
    "с человеком",
    "позовите человека",
    "менеджер",
    "менеджера",
    "менеджеру",
    "менеджером",
    "консультант",
    "консультанта",
    "сотрудник",
    "сотрудника",
    // Hindi (Devanagari)
    "एजेंट",
    "इंसान",
    "इन्सान",
    "ऑपरेटर",
    "मानव",
    "व्यक्ति से बात",
    // Hindi (romanised)
    "insaan se baat",
    "insan se baat",
    "insaan se",
    "insan se",
    "kisi insaan",
    "asli insaan",
    // Arabic
    "موظف",
    "الموظف",
    "وكيل",
    "الوكيل",
    "خدمة العملاء",
    "شخص حقيقي",
    "إنسان",
    "بشري",
    // Spanish
    "agente",
    "humano",
    "operador",
    "persona real",
    "ser humano",
    "hablar con una persona",
    "hablar con alguien",
    "asesor",
    "atención al cliente",
    // Portuguese
    "atendente",
    "pessoa real",
    "falar com uma pessoa",
    "falar com alguém",
    "atendimento humano",
];

impl Default for EscalationRules {
    /// [`DEFAULT_PHRASES`] and [`DEFAULT_WORDS`].
    fn default() -> Self {
        Self::new(owned(DEFAULT_PHRASES)).with_words(owned(DEFAULT_WORDS))
    }
}

/// A default list as owned strings (what configuration produces).
pub fn owned(list: &[&str]) -> Vec<String> {
    list.iter().map(|p| (*p).to_owned()).collect()
}

impl EscalationRules {
    /// Rules from configured phrases, with no lone word (add them with
    /// [`EscalationRules::with_words`]). Phrases that normalise to nothing (only punctuation) are
    /// dropped, and so are repeats (the first spelling is kept).
    pub fn new(phrases: Vec<String>) -> Self {
        let mut rules = normalise(phrases);
        rules.sort_by_key(|(_, w)| std::cmp::Reverse(w.len()));
        Self { rules, lone: Vec::new() }
    }

    /// Replaces the lone words (normalised, empty and repeated ones dropped, as for phrases).
    pub fn with_words(mut self, lone_words: Vec<String>) -> Self {
        self.lone = normalise(lone_words);
        self
    }

    /// Parses a configuration value: phrases separated by `|` or newlines, each trimmed, empty
    /// ones skipped (`"agent | live person\nоператор"`). No escaping: a phrase cannot contain `|`.
    pub fn parse_list(raw: &str) -> Vec<String> {
        raw.split(['|', '\n', '\r']).map(str::trim).filter(|p| !p.is_empty()).map(str::to_owned).collect()
    }

    /// The rule that `text` fires, if any: a phrase it contains (the longest), else a lone word it
    /// consists of.
    pub fn find(&self, text: &str) -> Option<EscalationMatch<'_>> {
        let text = words(text);
        let phrase = self.rules.iter().find(|(_, phrase)| text.windows(phrase.len()).any(|w| w == phrase.as_slice()));
        if let Some((p, _)) = phrase {
            return Some(EscalationMatch { rule: EscalationRule::Phrase, text: p });
        }
        self.lone.iter().find(|(_, word)| *word == text).map(|(w, _)| EscalationMatch { rule: EscalationRule::LoneWord, text: w })
    }

    /// The phrase or lone word (as configured) that `text` fires, if any; [`EscalationRules::find`]
    /// also says which rule it was.
    pub fn matches(&self, text: &str) -> Option<&str> {
        self.find(text).map(|m| m.text)
    }

    /// The configured phrases, most words first.
    pub fn phrases(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|(p, _)| p.as_str())
    }

    /// The configured lone words.
    pub fn lone_words(&self) -> impl Iterator<Item = &str> {
        self.lone.iter().map(|(w, _)| w.as_str())
    }

    /// Whether there is no phrase and no lone word at all (escalation by the customer's words is
    /// off).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty() && self.lone.is_empty()
    }
}

/// Each entry with its normalised words; entries that normalise to nothing, and repeats, dropped.
fn normalise(entries: Vec<String>) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::with_capacity(entries.len());
    for entry in entries {
        let words = words(&entry);
        if !words.is_empty() && !out.iter().any(|(_, w)| *w == words) {
            out.push((entry.trim().to_owned(), words));
        }
    }
    out
}

/// Normalises `text` and splits it into words.
fn words(text: &str) -> Vec<String> {
    let mut out = String::with_capacity(text.len());
    for c in text.chars().flat_map(char::to_lowercase) {
        match fold(c) {
            None => {}
            Some(c) if is_word_char(c) => out.push(c),
            Some(_) => out.push(' '),
        }
    }
    out.split_whitespace().map(str::to_owned).collect()
}

/// Folds a lower-case character to its matching form; `None` drops it (a diacritic, a joiner).
fn fold(c: char) -> Option<char> {
    Some(match c {
        // Combining diacritics, Arabic harakat and superscript alef, tatweel, nukta, joiners,
        // soft hyphen: spelled or not, the word is the same.
        '\u{0300}'..='\u{036F}' | '\u{064B}'..='\u{065F}' | '\u{0670}' | '\u{0640}' | '\u{093C}' | '\u{200C}' | '\u{200D}' | '\u{00AD}' => {
            return None;
        }
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' => 'a',
        'ç' => 'c',
        'è' | 'é' | 'ê' | 'ë' => 'e',
        'ì' | 'í' | 'î' | 'ï' => 'i',
        'ñ' => 'n',
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' => 'o',
        'ù' | 'ú' | 'û' | 'ü' => 'u',
        'ý' | 'ÿ' => 'y',
        'ё' => 'е',
        'أ' | 'إ' | 'آ' | 'ٱ' => 'ا',
        'ى' | 'ئ' => 'ي',
        'ؤ' => 'و',
        'ة' => 'ه',
        // Devanagari letters with a precomposed nukta: the base letter (the nukta is dropped above).
        '\u{0958}' => 'क',
        '\u{0959}' => 'ख',
        '\u{095A}' => 'ग',
        '\u{095B}' => 'ज',
        '\u{095C}' => 'ड',
        '\u{095D}' => 'ढ',
        '\u{095E}' => 'फ',
        '\u{095F}' => 'य',
        other => other,
    })
}

/// Letters, digits, and the combining signs of Indic scripts (vowel signs, virama), which are
/// part of a word even though `char::is_alphanumeric` says no for some of them. The dandas
/// (`।`, `॥`) are punctuation.
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || (('\u{0900}'..='\u{0DFF}').contains(&c) && !matches!(c, '\u{0964}' | '\u{0965}'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::turn::HandoffReason;

    #[test]
    fn whole_words_fire_and_parts_of_words_do_not() {
        let r = EscalationRules::default();
        assert_eq!(r.matches("I want to talk to an AGENT!"), Some("agent"));
        assert_eq!(r.matches("Please, a live-agent."), Some("live agent"));
        assert_eq!(r.matches("is this agentic?"), None);
        assert_eq!(r.matches("buy reagent"), None);
        assert_eq!(r.find("help me find my order"), None);
        assert_eq!(r.matches("стол на 4 человек"), None);
        assert_eq!(r.matches(""), None);
    }

    #[test]
    fn works_across_scripts_and_spellings() {
        let r = EscalationRules::default();
        assert_eq!(r.matches("Позовите ОПЕРАТОРА, пожалуйста"), Some("оператора"));
        assert_eq!(r.matches("хочу поговорить с живым человеком"), Some("живым человеком"));
        assert_eq!(r.matches("मुझे इंसान से बात करनी है।"), Some("इंसान"));
        assert_eq!(r.matches("मुझे ऑपरेटर चाहिए"), Some("ऑपरेटर"));
        assert_eq!(r.matches("mujhe insaan se baat karni hai"), Some("insaan se baat"));
        assert_eq!(r.matches("أريد التحدث مع موظف من فضلك"), Some("موظف"));
        assert_eq!(r.matches("اريد خدمه العملاء؟"), Some("خدمة العملاء"), "ة/ه and punctuation fold");
        assert_eq!(r.matches("أُرِيدُ إِنْسَانًا"), None, "a different word form");
        assert_eq!(r.matches("أريد إنسان"), Some("إنسان"));
        assert_eq!(r.matches("Quiero hablar con un AGENTE"), Some("agente"));
        assert_eq!(r.matches("necesito atencion al cliente"), Some("atención al cliente"));
        assert_eq!(r.matches("Quero falar com alguem"), Some("falar com alguém"));
        assert_eq!(r.matches("preciso de um atendente"), Some("atendente"));
    }

    #[test]
    fn configured_lists_replace_the_defaults() {
        let phrases = EscalationRules::parse_list(" human please |\n\nrefund|| ?! \r\nmanager");
        assert_eq!(phrases, vec!["human please", "refund", "?!", "manager"]);
        let r = EscalationRules::new(phrases);
        assert_eq!(r.phrases().collect::<Vec<_>>(), vec!["human please", "refund", "manager"]);
        assert_eq!(r.matches("HUMAN, please!"), Some("human please"));
        assert_eq!(r.matches("an agent"), None);
        assert_eq!(r.matches("help"), None, "new() has no lone word");
        assert!(EscalationRules::new(vec![]).is_empty());
        assert!(!EscalationRules::new(vec![]).with_words(vec!["socorro".into()]).is_empty());
        assert_eq!(EscalationRules::new(vec!["A".into(), "a".into()]).phrases().count(), 1);
        let words = EscalationRules::new(vec![]).with_words(EscalationRules::parse_list("socorro | SOCORRO!|talk now"));
        assert_eq!(words.lone_words().collect::<Vec<_>>(), vec!["socorro", "talk now"]);
        assert_eq!(words.find("Socorro!!"), Some(EscalationMatch { rule: EscalationRule::LoneWord, text: "socorro" }));
        assert_eq!(words.matches("talk, now?"), Some("talk now"), "a several-word entry fires on exactly those words");
        assert_eq!(words.matches("help"), None, "configured words replace the defaults");
        assert_eq!(words.matches("talk now please"), None);
    }

    #[test]
    fn a_lone_word_escalates_and_the_same_word_in_a_sentence_does_not() {
        let r = EscalationRules::default();
        let lone = |w: &'static str| Some(EscalationMatch { rule: EscalationRule::LoneWord, text: w });
        for text in ["help", "HELP!", "Help?", "  help.  ", "help!!! 🙏", "¡help!", "\nHelp\n"] {
            assert_eq!(r.find(text), lone("help"), "{text:?}");
        }
        assert_eq!(r.find("Помощь!"), lone("помощь"));
        assert_eq!(r.find("¿Ayuda?"), lone("ayuda"));
        assert_eq!(r.find("AJUDA"), lone("ajuda"));
        assert_eq!(r.find("मदद।"), lone("मदद"));
        assert_eq!(r.find("Madad!"), lone("madad"));
        assert_eq!(r.find("مساعدة؟"), lone("مساعدة"));
        assert_eq!(r.find("مساعده"), lone("مساعدة"), "ة/ه fold");
        for text in [
            "help me find my order",
            "can you help?",
            "I need help with my order",
            "помощь с заказом",
            "necesito ayuda con mi pedido",
            "मुझे मदद चाहिए",
            "help help",
            "helpful",
            "helpdesk",
        ] {
            assert_eq!(r.find(text), None, "{text:?}");
        }
        // A phrase is reported as a phrase, even beside a lone word.
        assert_eq!(r.find("help! agent!"), Some(EscalationMatch { rule: EscalationRule::Phrase, text: "agent" }));
        assert_eq!(EscalationRule::LoneWord.as_str(), "lone_word");
        assert_eq!(EscalationRule::Phrase.as_str(), "phrase");
        // The handoff a match causes carries the rule, for the log and the turn record.
        let reason = HandoffReason::from(r.find("HELP!").expect("lone word"));
        assert_eq!(reason, HandoffReason::LoneWord { word: "help".into() });
        assert_eq!(reason.rule(), "lone_word");
        assert_eq!(serde_json::to_value(&reason).expect("json"), serde_json::json!({"rule": "lone_word", "word": "help"}));
        assert_eq!(HandoffReason::from(r.find("an agent").expect("phrase")).rule(), "phrase");
    }

    proptest::proptest! {
        #[test]
        fn no_sentence_of_two_or_more_words_escalates_by_the_word_rule(
            before in proptest::collection::vec("[a-zA-Zа-яёЖ0-9\u{0915}-\u{0939}]{1,8}", 0..4),
            after in proptest::collection::vec("[a-zA-Zа-яёЖ0-9\u{0915}-\u{0939}]{1,8}", 0..4),
            word in "(help|HELP|Help|hElP)",
            punct in "[ ,.!?;:]{0,3}",
        ) {
            proptest::prop_assume!(before.len() + after.len() >= 1);
            let sentence = [before.join(" "), format!("{word}{punct}"), after.join(" ")].join(" ");
            let rules = EscalationRules::default();
            let found = rules.find(&sentence);
            proptest::prop_assert!(found.is_none_or(|m| m.rule != EscalationRule::LoneWord), "{sentence:?} -> {found:?}");
        }
    }
}
