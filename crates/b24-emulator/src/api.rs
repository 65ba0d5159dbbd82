//! Plain data types of the public Rust API (and, serialised, of the control API).

use serde::{Deserialize, Serialize};

/// What happens to the welcome bot when the chat goes to the queue (`WELCOME_BOT_LEFT`, contract §5.7).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WelcomeBotLeft {
    /// `queue`: the bot leaves the chat when it is handed to the queue (the default).
    #[default]
    Queue,
    /// `close`: the bot stays a member until the dialog closes; only the chat owner is cleared.
    Close,
}

impl WelcomeBotLeft {
    /// The Bitrix value.
    pub fn as_str(self) -> &'static str {
        match self {
            WelcomeBotLeft::Queue => "queue",
            WelcomeBotLeft::Close => "close",
        }
    }
}

/// When the welcome bot joins (`WELCOME_BOT_JOIN`, contract §5.7).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WelcomeBotJoin {
    /// `always`: every new session (the default).
    #[default]
    Always,
    /// `first`: only the first session of a chat.
    First,
}

impl WelcomeBotJoin {
    /// The Bitrix value.
    pub fn as_str(self) -> &'static str {
        match self {
            WelcomeBotJoin::Always => "always",
            WelcomeBotJoin::First => "first",
        }
    }
}

/// A new Open Lines line (config).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct NewLine {
    /// `LINE_NAME`.
    pub name: String,
    /// Connector id; the emulator's configured connector when `None`.
    pub connector_id: Option<String>,
    /// Queue operators, in order (the first one gets new chats and handed-off chats).
    pub queue: Vec<u64>,
    /// Whether the line creates and binds CRM leads.
    pub crm: bool,
    /// `WELCOME_BOT_LEFT`.
    pub welcome_bot_left: WelcomeBotLeft,
    /// `WELCOME_BOT_JOIN`.
    pub welcome_bot_join: WelcomeBotJoin,
    /// A fixed line id; the next free id when `None`.
    pub id: Option<u64>,
    /// The connector's sender id (the `@<subject>` part of Edna user codes; UNCONFIRMED format).
    pub subject: Option<String>,
    /// The line's greeting (`imopenlines.bot.session.message.send` with `NAME=WELCOME`).
    pub welcome_message: Option<String>,
}

impl Default for NewLine {
    fn default() -> Self {
        NewLine {
            name: "WhatsApp".to_owned(),
            connector_id: None,
            queue: Vec::new(),
            crm: true,
            welcome_bot_left: WelcomeBotLeft::Queue,
            welcome_bot_join: WelcomeBotJoin::Always,
            id: None,
            subject: None,
            welcome_message: None,
        }
    }
}

/// What [`crate::Emulator::seed_demo`] created.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DemoPortal {
    /// The service user's incoming webhook, `http://127.0.0.1:PORT/rest/38005/<code>/`.
    pub webhook_url: String,
    /// The service user ("AI assistant", 38005).
    pub service_user_id: u64,
    /// A human queue operator.
    pub operator_id: u64,
    /// The WhatsApp line (3, `whatsappbyedna`, CRM on).
    pub whatsapp_line_id: u64,
    /// The other lines (1 and 5).
    pub other_line_ids: Vec<u64>,
}

/// The result of a customer writing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerMessage {
    /// The Open Lines chat.
    pub chat_id: u64,
    /// The new message.
    pub message_id: u64,
    /// The session the message belongs to.
    pub session_id: u64,
    /// The connector (customer) user.
    pub user_id: u64,
}

/// A message that reached the customer's messenger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxMessage {
    /// Bitrix message id.
    pub message_id: u64,
    /// Author (bot, employee, or 0 for an automatic message).
    pub author_id: u64,
    /// The text as the customer sees it (for WhatsApp connectors: BB codes reduced to plain text, contract §6.6).
    pub text: String,
    /// The text as stored in Bitrix24.
    pub raw_text: String,
    /// The keyboard buttons the customer sees: the message's `KEYBOARD`, except on WhatsApp
    /// connectors, which drop it (`EmulatorConfig::keyboards_reach_whatsapp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyboard: Option<serde_json::Value>,
}

/// One message in a [`ChatSnapshot`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMessage {
    /// Message id.
    pub id: u64,
    /// Author, 0 for system messages.
    pub author_id: u64,
    /// Text.
    pub text: String,
    /// `SYSTEM=Y`.
    pub system: bool,
    /// `SKIP_CONNECTOR=Y`.
    pub skip_connector: bool,
    /// Whether it reached the customer's messenger.
    pub to_customer: bool,
    /// Meant for the customer but posted after the chat's `BLOCK_DATE` (WhatsApp's 24-hour
    /// window), so never delivered.
    pub window_blocked: bool,
    /// Session id when written.
    pub session_id: u64,
}

/// A chat's state, for assertions.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChatSnapshot {
    /// Chat id.
    pub chat_id: u64,
    /// `chat<id>`.
    pub dialog_id: String,
    /// Line id (0 for a non-Open-Lines chat).
    pub line_id: u64,
    /// The connector (customer) user.
    pub customer_id: u64,
    /// Current session operator (None when the session is closed or waiting in the queue).
    pub operator_id: Option<u64>,
    /// The current (or last) session id.
    pub session_id: u64,
    /// Whether that session is open.
    pub session_open: bool,
    /// Chat members, in join order.
    pub members: Vec<u64>,
    /// Bots that are members.
    pub bot_in_chat: Vec<u64>,
    /// `entity_id` (user code).
    pub entity_id: String,
    /// `entity_data_1`.
    pub entity_data_1: String,
    /// `entity_data_2`.
    pub entity_data_2: String,
    /// `entity_data_3`.
    pub entity_data_3: String,
    /// Users (and bots) who sent a typing notice, in order.
    pub typing: Vec<u64>,
    /// All messages, oldest first.
    pub messages: Vec<SnapshotMessage>,
}
