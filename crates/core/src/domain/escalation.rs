//! Escalation phrases: the customer asks for a human, in one of several languages.
//!
//! A phrase fires when its words appear, in order and next to each other, as whole words of the
//! message, after both are normalised the same way: lower-cased; Latin accents, Russian `ё`,
//! Arabic diacritics, tatweel and letter variants (`أ إ آ` → `ا`, `ى` → `ي`, `ة` → `ه`) and the
//! Devanagari nukta folded; every character that is not a letter, digit or combining mark (so
//! punctuation, symbols, emoji) treated as a space. "I want to talk to an AGENT!" fires `agent`;
//! "agentic" and "reagent" do not. Whole-word matching has a price in inflected languages: the
//! Russian defaults list the forms people write (`оператор`, `оператора`, `оператору`).
//!
//! The defaults deliberately leave out bare "help" (and "помощь", "ayuda"): customers write "help
//! me find my order" to the bot, and escalating that would send every ordinary question to a human.
//! They also leave out bare "человек" ("a person"), which Russian uses for counting people ("стол
//! на 4 человек"); "живой человек" and "с человеком" are in instead.
//!
//! When several phrases match, the one with the most words is reported ("live agent" rather than
//! "agent"), so the logged rule is the most specific one.

/// The configured escalation phrases, normalised once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EscalationRules {
    /// (phrase as configured, its normalised words), most words first.
    rules: Vec<(String, Vec<String>)>,
}

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
    fn default() -> Self {
        Self::new(DEFAULT_PHRASES.iter().map(|p| (*p).to_owned()).collect())
    }
}

impl EscalationRules {
    /// Rules from configured phrases. Phrases that normalise to nothing (only punctuation) are
    /// dropped, and so are repeats (the first spelling is kept).
    pub fn new(phrases: Vec<String>) -> Self {
        let mut rules: Vec<(String, Vec<String>)> = Vec::with_capacity(phrases.len());
        for phrase in phrases {
            let words = words(&phrase);
            if !words.is_empty() && !rules.iter().any(|(_, w)| *w == words) {
                rules.push((phrase.trim().to_owned(), words));
            }
        }
        rules.sort_by_key(|(_, w)| std::cmp::Reverse(w.len()));
        Self { rules }
    }

    /// Parses a configuration value: phrases separated by `|` or newlines, each trimmed, empty
    /// ones skipped (`"agent | live person\nоператор"`). No escaping: a phrase cannot contain `|`.
    pub fn parse_list(raw: &str) -> Vec<String> {
        raw.split(['|', '\n', '\r']).map(str::trim).filter(|p| !p.is_empty()).map(str::to_owned).collect()
    }

    /// The phrase (as configured) that `text` contains, if any.
    pub fn matches(&self, text: &str) -> Option<&str> {
        let text = words(text);
        self.rules.iter().find(|(_, phrase)| text.windows(phrase.len()).any(|w| w == phrase.as_slice())).map(|(p, _)| p.as_str())
    }

    /// The configured phrases, most words first.
    pub fn phrases(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|(p, _)| p.as_str())
    }

    /// Whether there is no phrase at all (escalation by phrase is off).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
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

    #[test]
    fn whole_words_fire_and_parts_of_words_do_not() {
        let r = EscalationRules::default();
        assert_eq!(r.matches("I want to talk to an AGENT!"), Some("agent"));
        assert_eq!(r.matches("Please, a live-agent."), Some("live agent"));
        assert_eq!(r.matches("is this agentic?"), None);
        assert_eq!(r.matches("buy reagent"), None);
        assert_eq!(r.matches("help me find my order"), None);
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
        assert!(EscalationRules::new(vec![]).is_empty());
        assert_eq!(EscalationRules::new(vec!["A".into(), "a".into()]).phrases().count(), 1);
    }
}
