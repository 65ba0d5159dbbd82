//! Identifiers as newtypes that can only be built by parsing.
//!
//! Bitrix24 sends every scalar of an event as a string and many REST results as strings too
//! (`"CHAT_ID": "1763"`), so every identifier here is parsed once at the edge and carried as a
//! typed value afterwards. A `ChatId` can never be confused with a `MessageId`, and a string that
//! is not a positive integer never becomes one.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a value could not be parsed into an identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what}: {reason}")]
pub struct IdError {
    /// Which identifier was being parsed (`"chat id"`, `"member id"`, ...).
    pub what: &'static str,
    /// What was wrong with it, without echoing secrets.
    pub reason: String,
}

impl IdError {
    fn new(what: &'static str, reason: impl Into<String>) -> Self {
        Self { what, reason: reason.into() }
    }
}

/// Parses a positive decimal integer as Bitrix24 writes ids: `"42"`, never `"+42"`, `"0"` or `" 42"`.
fn parse_positive(what: &'static str, raw: &str) -> Result<u64, IdError> {
    if raw.is_empty() || raw.len() > 19 || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(IdError::new(what, "expected a positive decimal integer"));
    }
    match raw.parse::<u64>() {
        Ok(0) | Err(_) => Err(IdError::new(what, "expected a positive decimal integer")),
        Ok(n) => Ok(n),
    }
}

macro_rules! numeric_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(u64);

        impl $name {
            /// Parses the decimal string form Bitrix24 uses on the wire.
            pub fn parse(raw: &str) -> Result<Self, IdError> {
                parse_positive($what, raw).map(Self)
            }

            /// Builds the id from a number already known to be a Bitrix24 id (a JSON number in a
            /// REST result); zero is refused because Bitrix24 uses it for "none".
            pub fn new(n: u64) -> Result<Self, IdError> {
                if n == 0 { Err(IdError::new($what, "zero is not an id")) } else { Ok(Self(n)) }
            }

            /// The numeric value.
            pub fn get(self) -> u64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }
    };
}

numeric_id!(
    /// A chat (`CHAT_ID`); Open Lines chats are addressed as dialog `chat<N>`.
    ChatId, "chat id"
);
numeric_id!(
    /// A message id; portal-wide and increasing, so "newer than" is a numeric comparison.
    MessageId, "message id"
);
numeric_id!(
    /// A Bitrix24 user: employee, operator, bot or connector (customer) user.
    UserId, "user id"
);
numeric_id!(
    /// A chatbot's id (bots are users too, but a `BotId` says which role is meant).
    BotId, "bot id"
);
numeric_id!(
    /// An Open Lines session (field 6 of `entity_data_1`).
    SessionId, "session id"
);
numeric_id!(
    /// An Open Lines line (config id).
    LineId, "line id"
);

impl BotId {
    /// The bot's user id: a bot posts as the user with the same id.
    pub fn as_user(self) -> UserId {
        UserId(self.0)
    }
}

/// A dialog as `im.*` methods address it: `chat<N>` for chats (always, for Open Lines) or a user id
/// for a private dialog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DialogId {
    /// `chat<N>`.
    Chat(ChatId),
    /// A private dialog with that user.
    User(UserId),
}

impl DialogId {
    /// Parses `chat123` or `123`.
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        match raw.strip_prefix("chat") {
            Some(rest) => ChatId::parse(rest).map(Self::Chat).map_err(|_| IdError::new("dialog id", "expected chat<N> or <user id>")),
            None => UserId::parse(raw).map(Self::User).map_err(|_| IdError::new("dialog id", "expected chat<N> or <user id>")),
        }
    }

    /// The chat, when this dialog is a chat.
    pub fn chat(self) -> Option<ChatId> {
        match self {
            Self::Chat(c) => Some(c),
            Self::User(_) => None,
        }
    }
}

impl From<ChatId> for DialogId {
    fn from(c: ChatId) -> Self {
        Self::Chat(c)
    }
}

impl fmt::Display for DialogId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Chat(c) => write!(f, "chat{c}"),
            Self::User(u) => write!(f, "{u}"),
        }
    }
}

impl TryFrom<String> for DialogId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        Self::parse(&s)
    }
}

impl From<DialogId> for String {
    fn from(d: DialogId) -> String {
        d.to_string()
    }
}

/// A portal's member id (`auth[member_id]`): 32 lowercase hex characters on real portals; we accept
/// 1–64 ASCII alphanumerics so test portals and self-hosted installs work too.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MemberId(String);

impl MemberId {
    /// Parses a member id.
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        if raw.is_empty() || raw.len() > 64 || !raw.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(IdError::new("member id", "expected 1-64 ASCII letters or digits"));
        }
        Ok(Self(raw.to_ascii_lowercase()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A stand-in for a portal whose member id is not known yet: `domain` plus the domain's letters
    /// and digits (at most 64 characters). No REST call available to an incoming webhook returns
    /// the member id (only events carry it), so operator mode, which has no events, keys its
    /// messages with this until `B24_MEMBER_ID` is configured or an event pins the real one.
    pub fn stand_in(domain: &PortalDomain) -> Self {
        let mut id: String = "domain".chars().chain(domain.as_str().chars().filter(char::is_ascii_alphanumeric)).collect();
        id.truncate(64);
        Self(id.to_ascii_lowercase())
    }
}

impl fmt::Display for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for MemberId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        Self::parse(&s)
    }
}

impl From<MemberId> for String {
    fn from(m: MemberId) -> String {
        m.0
    }
}

/// A portal's host, with the port when there is one (`example.bitrix24.com`, `127.0.0.1:8091`),
/// lower-cased: events carry it in `auth[domain]` and it must match `B24_WEBHOOK_BASE`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PortalDomain(String);

impl PortalDomain {
    /// Parses `host` or `host:port`.
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        let ok = !raw.is_empty()
            && raw.len() <= 253
            && raw.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'_'))
            && !raw.starts_with(['.', ':', '-']);
        if !ok {
            return Err(IdError::new("portal domain", "expected host or host:port"));
        }
        Ok(Self(raw.to_ascii_lowercase()))
    }

    /// The domain of a URL: host plus explicit port.
    pub fn from_url(url: &url::Url) -> Result<Self, IdError> {
        let host = url.host_str().ok_or_else(|| IdError::new("portal domain", "URL has no host"))?;
        match url.port() {
            Some(p) => Self::parse(&format!("{host}:{p}")),
            None => Self::parse(host),
        }
    }

    /// The domain as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PortalDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for PortalDomain {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        Self::parse(&s)
    }
}

impl From<PortalDomain> for String {
    fn from(d: PortalDomain) -> String {
        d.0
    }
}

/// A customer's phone number, normalised to `+<digits>` (7–15 digits, E.164 length).
///
/// Connectors write numbers in different ways (`79991234567`, `+7 999 123-45-67`); the format inside
/// an Edna user code is UNCONFIRMED, so parsing is tolerant of spaces, dashes, dots and brackets and
/// of a missing `+`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Phone(String);

impl Phone {
    /// Parses and normalises a phone number.
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        let trimmed = raw.trim();
        let body = trimmed.strip_prefix('+').unwrap_or(trimmed);
        let body = body.strip_prefix("00").filter(|_| !trimmed.starts_with('+')).unwrap_or(body);
        let mut digits = String::with_capacity(16);
        for c in body.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' | '.' | '(' | ')' => {}
                _ => return Err(IdError::new("phone", "unexpected character")),
            }
        }
        if !(7..=15).contains(&digits.len()) {
            return Err(IdError::new("phone", "expected 7 to 15 digits"));
        }
        Ok(Self(format!("+{digits}")))
    }

    /// `+<digits>`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form for logs: country code and last two digits only (`+79•••••••67`).
    pub fn redacted(&self) -> String {
        redact_phone(&self.0)
    }
}

/// Redacts a phone number for logs, keeping the first three and last two characters.
pub fn redact_phone(p: &str) -> String {
    let chars: Vec<char> = p.chars().collect();
    if chars.len() <= 5 {
        return "•".repeat(chars.len());
    }
    let mut out: String = chars[..3].iter().collect();
    out.extend(std::iter::repeat_n('•', chars.len() - 5));
    out.extend(&chars[chars.len() - 2..]);
    out
}

impl fmt::Debug for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Phone({})", self.redacted())
    }
}

impl fmt::Display for Phone {
    /// Display is the full number: it goes to the bot and into the store, never into logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Phone {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        Self::parse(&s)
    }
}

impl From<Phone> for String {
    fn from(p: Phone) -> String {
        p.0
    }
}

/// The de-duplication key of one customer message: portal member id + message id. Whatever path
/// brought the message (push, poll, fetch, reconciliation), the key is the same, so the message is
/// answered once.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DedupKey(String);

impl DedupKey {
    /// The key of a message.
    pub fn message(member: &MemberId, message: MessageId) -> Self {
        Self(format!("{member}:msg:{message}"))
    }

    /// The key of a non-message event (a bot joining a chat, a command), which has no message id;
    /// `discriminator` must identify the event uniquely within the portal.
    pub fn event(member: &MemberId, kind: &str, discriminator: &str) -> Self {
        Self(format!("{member}:{kind}:{discriminator}"))
    }

    /// Rebuilds a key read back from a store.
    pub fn from_stored(raw: String) -> Self {
        Self(raw)
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DedupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stand_in_member_id_is_a_valid_member_id_named_after_the_domain() {
        let d = PortalDomain::parse("Example.Bitrix24.com:8443").expect("domain");
        let m = MemberId::stand_in(&d);
        assert_eq!(m.as_str(), "domainexamplebitrix24com8443");
        assert_eq!(MemberId::parse(m.as_str()), Ok(m));
        let long = PortalDomain::parse(&format!("{}.com", "a".repeat(100))).expect("domain");
        assert_eq!(MemberId::stand_in(&long).as_str().len(), 64);
    }

    #[test]
    fn numeric_ids_accept_only_positive_decimals() {
        assert_eq!(ChatId::parse("1763").map(ChatId::get), Ok(1763));
        for bad in ["", "0", "-1", "+5", " 5", "5 ", "1e3", "chat5", "99999999999999999999"] {
            assert!(ChatId::parse(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn dialog_ids_round_trip() {
        assert_eq!(DialogId::parse("chat5").map(|d| d.to_string()), Ok("chat5".into()));
        assert_eq!(DialogId::parse("27").map(|d| d.to_string()), Ok("27".into()));
        assert!(DialogId::parse("chat").is_err());
        assert!(DialogId::parse("chatx").is_err());
        assert!(DialogId::parse("").is_err());
    }

    #[test]
    fn phones_are_normalised_and_redacted() {
        let p = Phone::parse("+7 (999) 123-45-67").expect("valid");
        assert_eq!(p.as_str(), "+79991234567");
        assert_eq!(Phone::parse("79991234567").map(|p| p.as_str().to_owned()), Ok("+79991234567".into()));
        assert_eq!(Phone::parse("0079991234567").map(|p| p.as_str().to_owned()), Ok("+79991234567".into()));
        assert!(Phone::parse("12345").is_err());
        assert!(Phone::parse("+7999abc").is_err());
        assert_eq!(format!("{p:?}"), "Phone(+79•••••••67)");
        assert!(!format!("{p:?}").contains("1234"));
    }

    #[test]
    fn domains_keep_ports_and_lowercase() {
        let u = url::Url::parse("http://127.0.0.1:8091/rest/1/abc/").expect("url");
        assert_eq!(PortalDomain::from_url(&u).map(|d| d.to_string()), Ok("127.0.0.1:8091".into()));
        let u = url::Url::parse("https://Example.Bitrix24.com/rest/1/abc/").expect("url");
        assert_eq!(PortalDomain::from_url(&u).map(|d| d.to_string()), Ok("example.bitrix24.com".into()));
        assert!(PortalDomain::parse("a b").is_err());
    }

    #[test]
    fn member_ids_are_lowercased_alphanumerics() {
        assert_eq!(MemberId::parse("ABC123").map(|m| m.to_string()), Ok("abc123".into()));
        assert!(MemberId::parse("").is_err());
        assert!(MemberId::parse("a-b").is_err());
    }
}
