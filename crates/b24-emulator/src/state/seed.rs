//! Creating portal records from the Rust and control APIs: employees, webhooks, lines, welcome bots, and the
//! demo portal (service user 38005 "AI assistant", an operator, lines 1, 3 and 5).

use super::model::{Line, User, UserKind, Webhook};
use super::openlines::color_for;
use super::{Portal, random_code};
use crate::api::NewLine;
use crate::rest::errors::ApiError;

/// The demo portal's fixed ids.
pub(crate) const SERVICE_USER: u64 = 38005;
pub(crate) const DEMO_SCOPES: [&str; 4] = ["im", "imopenlines", "imbot", "crm"];

/// What `imbot.register` / `imbot.v2.Bot.register` say about the bot's user.
#[derive(Debug, Default)]
pub(crate) struct BotUser {
    pub first_name: String,
    pub last_name: String,
    pub work_position: String,
    pub gender: String,
    pub email: String,
}

impl Portal {
    /// Adds (or renames) an employee; `id` defaults to the next free user id.
    pub fn add_employee(&mut self, id: Option<u64>, first_name: &str, last_name: &str) -> u64 {
        let id = id.unwrap_or_else(|| self.next_user_id());
        let now = self.now();
        self.users.insert(
            id,
            User {
                id,
                first_name: first_name.to_owned(),
                last_name: last_name.to_owned(),
                kind: UserKind::Employee,
                work_position: String::new(),
                gender: String::new(),
                email: format!("user{id}@example.invalid"),
                phone: None,
                color: color_for(id),
                active: true,
                departments: vec![1],
                last_activity: now,
            },
        );
        id
    }

    /// Adds the user a new bot posts as (bots are users, v1 and v2 alike); returns its id.
    pub(crate) fn add_bot_user(&mut self, profile: BotUser) -> u64 {
        let id = self.next_user_id();
        let now = self.now();
        self.users.insert(
            id,
            User {
                id,
                first_name: profile.first_name,
                last_name: profile.last_name,
                kind: UserKind::Bot,
                work_position: profile.work_position,
                gender: profile.gender,
                email: profile.email,
                phone: None,
                color: color_for(id),
                active: true,
                departments: Vec::new(),
                last_activity: now,
            },
        );
        id
    }

    /// Adds an incoming webhook for a user; returns its code.
    pub fn add_webhook(&mut self, user_id: u64, scopes: &[&str]) -> Result<String, ApiError> {
        if !self.users.get(&user_id).is_some_and(|u| u.kind == UserKind::Employee) {
            return Err(ApiError::new(404, "USER_NOT_FOUND", "No such employee"));
        }
        let code = random_code(16);
        let scopes = scopes.iter().map(|s| s.trim().to_lowercase()).filter(|s| !s.is_empty()).collect();
        self.webhooks.insert((user_id, code.clone()), Webhook { scopes });
        Ok(code)
    }

    /// Adds (or replaces) a line.
    pub fn add_line(&mut self, l: NewLine) -> u64 {
        let id = l.id.unwrap_or_else(|| self.lines.keys().next_back().map_or(1, |m| m.saturating_add(1)));
        let now = self.now();
        let connector_id = l.connector_id.unwrap_or_else(|| self.ident.default_connector.clone());
        self.lines.insert(
            id,
            Line {
                id,
                name: l.name,
                active: true,
                connector_id,
                queue: l.queue,
                crm: l.crm,
                welcome_bot_enable: false,
                welcome_bot_id: 0,
                welcome_bot_join: l.welcome_bot_join,
                welcome_bot_left: l.welcome_bot_left,
                welcome_bot_time: 0,
                subject: l.subject.unwrap_or_else(|| "olbridge".to_owned()),
                welcome_message: l.welcome_message.unwrap_or_else(|| "Hello! How can we help you?".to_owned()),
                date_create: now,
            },
        );
        id
    }

    /// What the admin does in the line settings: enable the welcome bot (an Open Lines bot).
    pub fn attach_welcome_bot(&mut self, line_id: u64, bot_id: u64) -> Result<(), ApiError> {
        let bot = self.bots.get(&bot_id).ok_or_else(|| ApiError::new(404, "BOT_NOT_FOUND", "Bot not found"))?;
        if !bot.serves_openlines() {
            return Err(ApiError::bad("BOT_NOT_OPENLINE", "Only Open Lines bots (TYPE=O or OPENLINE=Y) can be welcome bots"));
        }
        let line = self.lines.get_mut(&line_id).ok_or_else(|| ApiError::new(404, "LINE_NOT_FOUND", "Line not found"))?;
        line.welcome_bot_enable = true;
        line.welcome_bot_id = bot_id;
        Ok(())
    }

    /// Seeds the demo portal; returns (webhook code, operator id). Re-seeding reuses what exists.
    pub fn seed_demo(&mut self) -> (String, u64) {
        if !self.users.contains_key(&1) {
            self.add_employee(Some(1), "Portal", "Admin");
        }
        if !self.users.contains_key(&SERVICE_USER) {
            self.add_employee(Some(SERVICE_USER), "AI", "assistant");
            if let Some(u) = self.users.get_mut(&SERVICE_USER) {
                u.work_position = "AI assistant".to_owned();
            }
        }
        let operator = match self.users.values().find(|u| u.first_name == "Olga" && u.last_name == "Operator") {
            Some(u) => u.id,
            None => {
                let id = self.add_employee(None, "Olga", "Operator");
                if let Some(u) = self.users.get_mut(&id) {
                    u.work_position = "Operator".to_owned();
                    u.gender = "F".to_owned();
                }
                id
            }
        };
        let lines = [
            (1, "Website chat", "livechat", vec![operator], false),
            // The operator first: handoffs go to the first human of the queue; the service user is in the
            // queue so that it can read the line's chats.
            (3, "WhatsApp", "whatsappbyedna", vec![operator, SERVICE_USER], true),
            (5, "Telegram", "telegrambot", vec![operator], false),
        ];
        for (id, name, connector, queue, crm) in lines {
            if !self.lines.contains_key(&id) {
                self.add_line(NewLine { id: Some(id), name: name.to_owned(), connector_id: Some(connector.to_owned()), queue, crm, ..NewLine::default() });
            }
        }
        let existing = self.webhooks.keys().find(|(u, _)| *u == SERVICE_USER).map(|(_, c)| c.clone());
        let code = match existing {
            Some(c) => c,
            None => self.add_webhook(SERVICE_USER, &DEMO_SCOPES).unwrap_or_default(),
        };
        (code, operator)
    }
}
