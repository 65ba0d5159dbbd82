//! Open Lines behaviour: customer messages, sessions, the welcome bot, the queue, handoff and finishing.
//!
//! The rules follow the contract (§5, and SRC `imopenlines/lib/chat.php`, `im/lib/bot.php`):
//! * a customer message opens a session when none is open; the line's welcome bot (if any) joins as session
//!   operator and gets `ONIMBOTJOINCHAT`, otherwise the first queue operator takes the chat;
//! * the customer typing exactly `0` to a bot ends the bot session (system message, chat to the queue), and the
//!   bot hears nothing about it;
//! * `endBotSession` removes the bot from the chat (or, with `WELCOME_BOT_LEFT=close`, only clears the owner);
//! * finishing a session removes everyone but the customer; the next message starts a new session.
//!
//! Transfers are accepted immediately (the emulator has no operator UI to accept them).

use super::Portal;
use super::model::{Chat, CrmLinks, LinesInfo, Session, User, UserKind};
use crate::api::{CustomerMessage, WelcomeBotJoin, WelcomeBotLeft};
use crate::rest::errors::ApiError;

/// The digits of a phone number (`+49 170-123` → `49170123`).
pub(crate) fn phone_digits(phone: &str) -> String {
    phone.chars().filter(char::is_ascii_digit).collect()
}

/// Where a transfer goes.
#[derive(Clone, Copy, Debug)]
pub(crate) enum TransferTo {
    User(u64),
    /// A line config id: its first available queue operator.
    Queue(u64),
}

const COLORS: [&str; 6] = ["#58cc47", "#ab7761", "#4ba984", "#df532d", "#ba9c7b", "#29619b"];

pub(crate) fn color_for(id: u64) -> String {
    COLORS[(id % COLORS.len() as u64) as usize].to_owned()
}

impl Portal {
    /// A customer's message arriving through the line's connector.
    pub fn customer_writes(&mut self, line_id: u64, phone: &str, text: &str) -> Result<CustomerMessage, ApiError> {
        let line = self.lines.get(&line_id).cloned().ok_or_else(|| ApiError::new(404, "LINE_NOT_FOUND", "Line not found"))?;
        let digits = phone_digits(phone);
        if digits.is_empty() {
            return Err(ApiError::bad("PHONE_EMPTY", "Phone number has no digits"));
        }
        if text.trim().is_empty() {
            return Err(ApiError::bad("MESSAGE_EMPTY", "Message can't be empty"));
        }
        let user_id = self.ensure_connector_user(&line.connector_id, &digits);
        let (chat_id, new_chat) = self.ensure_lines_chat(line_id, user_id, &digits);
        let session_id = match self.open_session(chat_id) {
            Some(s) => s.id,
            None => self.start_session(chat_id, new_chat, user_id),
        };
        self.refresh_window(chat_id);
        let message_id = self.post(super::messages::Post::text(chat_id, user_id, text));
        let bot_operator = self.open_session(chat_id).map(|s| s.operator_id).filter(|op| self.is_bot(*op));
        if text.trim() == "0" && bot_operator.is_some() {
            // SRC im/lib/bot.php: the client's "0" ends the bot session; no event reaches the bot.
            self.end_bot_session(chat_id)?;
        } else {
            self.notify_bots(message_id);
        }
        Ok(CustomerMessage { chat_id, message_id, session_id, user_id })
    }

    /// A customer message opens WhatsApp's window anew: `BLOCK_DATE` = now + the window, on
    /// WhatsApp lines (before the message's events are built, so they carry it).
    fn refresh_window(&mut self, chat_id: u64) {
        let Some(window) = self.ident.whatsapp_window else { return };
        let until = self.now().timestamp().saturating_add(i64::try_from(window.as_secs()).unwrap_or(i64::MAX));
        if let Some(l) = self.chats.get_mut(&chat_id).and_then(|c| c.lines.as_mut())
            && l.connector_id.to_ascii_lowercase().starts_with("whatsapp")
        {
            l.block_date = until;
            l.block_reason = crate::config::WHATSAPP_BLOCK_REASON.to_owned();
        }
    }

    /// Sets (or with `None` clears) a chat's `BLOCK_DATE`, as a test control.
    pub fn set_block_date(&mut self, chat_id: u64, at: Option<i64>) -> Result<(), ApiError> {
        let l = self.chats.get_mut(&chat_id).and_then(|c| c.lines.as_mut()).ok_or_else(|| ApiError::bad("CHAT_ID_EMPTY", "Not an Open Lines chat"))?;
        l.block_date = at.unwrap_or(0);
        l.block_reason = if at.is_some() { crate::config::WHATSAPP_BLOCK_REASON.to_owned() } else { "0".to_owned() };
        Ok(())
    }

    fn ensure_connector_user(&mut self, connector: &str, digits: &str) -> u64 {
        if let Some(id) = self.connector_users.get(&(connector.to_owned(), digits.to_owned())) {
            return *id;
        }
        let id = self.next_user_id();
        let tail: String = digits.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
        let now = self.now();
        self.users.insert(
            id,
            User {
                id,
                first_name: "Customer".to_owned(),
                last_name: tail,
                kind: UserKind::Connector,
                work_position: String::new(),
                gender: String::new(),
                email: String::new(),
                phone: Some(format!("+{digits}")),
                color: color_for(id),
                active: true,
                departments: Vec::new(),
                last_activity: now,
            },
        );
        self.connector_users.insert((connector.to_owned(), digits.to_owned()), id);
        id
    }

    fn ensure_lines_chat(&mut self, line_id: u64, customer: u64, digits: &str) -> (u64, bool) {
        if let Some(id) = self.lines_chats.get(&(line_id, customer)) {
            return (*id, false);
        }
        let Some(line) = self.lines.get(&line_id).cloned() else { return (0, false) };
        let id = self.ids.chat();
        let connector_chat = if line.connector_id.starts_with("whatsappbyedna") { format!("{digits}@{}", line.subject) } else { digits.to_owned() };
        let customer_name = self.user(customer).map(User::name).unwrap_or_default();
        let now = self.now();
        self.chats.insert(
            id,
            Chat {
                id,
                title: format!("{customer_name} - {}", line.name),
                color: color_for(id),
                owner: 0,
                date_create: now,
                members: vec![customer],
                lines: Some(LinesInfo {
                    line_id,
                    connector_id: line.connector_id.clone(),
                    customer_id: customer,
                    phone_digits: digits.to_owned(),
                    entity_id: format!("{}|{}|{}|{}", line.connector_id, line_id, connector_chat, customer),
                    session_id: 0,
                    crm: CrmLinks::default(),
                    silent: "N".to_owned(),
                    block_date: 0,
                    block_reason: "0".to_owned(),
                }),
                private_pair: None,
                message_ids: Vec::new(),
                typing: Vec::new(),
                read: Default::default(),
            },
        );
        self.lines_chats.insert((line_id, customer), id);
        (id, true)
    }

    fn start_session(&mut self, chat_id: u64, first_session: bool, customer: u64) -> u64 {
        let sid = self.ids.session();
        let line_id = self.chats.get(&chat_id).and_then(|c| c.lines.as_ref()).map_or(0, |l| l.line_id);
        let Some(line) = self.lines.get(&line_id).cloned() else { return 0 };
        let now = self.now();
        self.sessions.insert(sid, Session { id: sid, chat_id, line_id, operator_id: 0, open: true, date_create: now, date_close: None });
        if let Some(l) = self.chats.get_mut(&chat_id).and_then(|c| c.lines.as_mut()) {
            l.session_id = sid;
        }
        if line.crm {
            self.bind_crm(chat_id);
        }
        let bot = line.welcome_bot_id;
        let joins = line.welcome_bot_enable && self.bots.contains_key(&bot) && (line.welcome_bot_join == WelcomeBotJoin::Always || first_session);
        if joins {
            self.set_operator(chat_id, bot);
            self.emit_join(chat_id, bot, customer);
        } else {
            self.transfer_to_next_in_queue(chat_id, &[]);
        }
        sid
    }

    fn set_operator(&mut self, chat_id: u64, user: u64) {
        let sid = self.session_id_of(chat_id);
        if let Some(s) = self.sessions.get_mut(&sid) {
            s.operator_id = user;
        }
        if let Some(c) = self.chats.get_mut(&chat_id) {
            c.owner = user;
        }
        if user > 0 {
            self.add_chat_member(chat_id, user);
        }
    }

    /// Gives the chat to the first active, human queue operator not in `skip`; 0 if there is none.
    pub fn transfer_to_next_in_queue(&mut self, chat_id: u64, skip: &[u64]) -> u64 {
        let line_id = self.chats.get(&chat_id).and_then(|c| c.lines.as_ref()).map_or(0, |l| l.line_id);
        self.give_to_queue_of(chat_id, line_id, skip)
    }

    fn give_to_queue_of(&mut self, chat_id: u64, line_id: u64, skip: &[u64]) -> u64 {
        let next = self
            .lines
            .get(&line_id)
            .and_then(|line| line.queue.iter().copied().find(|u| !skip.contains(u) && self.user(*u).is_some_and(|x| x.active && x.kind == UserKind::Employee)))
            .unwrap_or(0);
        self.set_operator(chat_id, next);
        next
    }

    /// Removes a bot that stops serving the chat (kept as member when the line says `WELCOME_BOT_LEFT=close`).
    fn bot_steps_back(&mut self, chat_id: u64, bot: u64) {
        let close = self
            .chats
            .get(&chat_id)
            .and_then(|c| c.lines.as_ref())
            .and_then(|l| self.lines.get(&l.line_id))
            .is_some_and(|line| line.welcome_bot_left == WelcomeBotLeft::Close);
        if let Some(c) = self.chats.get_mut(&chat_id) {
            if close {
                c.owner = 0;
            } else {
                c.remove_member(bot);
            }
        }
    }

    /// SRC `Chat::endBotSession`: `WRONG_CHAT` "Operator is not a bot" unless a bot holds the open session.
    pub fn end_bot_session(&mut self, chat_id: u64) -> Result<(), ApiError> {
        let wrong = || ApiError::bad("WRONG_CHAT", "Operator is not a bot");
        let op = self.open_session(chat_id).map(|s| s.operator_id).ok_or_else(wrong)?;
        if !self.is_bot(op) {
            return Err(wrong());
        }
        self.bot_steps_back(chat_id, op);
        self.system_message(chat_id, "The chatbot session has ended. The conversation has been transferred to the queue.");
        self.transfer_to_next_in_queue(chat_id, &[op]);
        Ok(())
    }

    /// Transfers the open session (bot or operator initiated). `OPERATOR_WRONG` when the target is not a usable
    /// operator or line.
    pub fn transfer(&mut self, chat_id: u64, to: TransferTo) -> Result<(), ApiError> {
        let wrong = || ApiError::bad("OPERATOR_WRONG", "You can not redirect to this operator");
        let from = self.open_session(chat_id).map(|s| s.operator_id).ok_or_else(wrong)?;
        match to {
            TransferTo::User(u) => {
                // SRC Chat::transferToOperator: never to a bot, an extranet or a connector user.
                if !self.user(u).is_some_and(|x| x.active && x.kind == UserKind::Employee) {
                    return Err(wrong());
                }
                self.step_back(chat_id, from);
                self.system_message(chat_id, "The conversation has been transferred to another operator.");
                self.set_operator(chat_id, u);
            }
            TransferTo::Queue(line_id) => {
                if !self.lines.contains_key(&line_id) {
                    return Err(wrong());
                }
                self.step_back(chat_id, from);
                self.system_message(chat_id, "The conversation has been transferred to the queue.");
                self.give_to_queue_of(chat_id, line_id, &[from]);
            }
        }
        Ok(())
    }

    fn step_back(&mut self, chat_id: u64, from: u64) {
        if from == 0 {
            return;
        }
        if self.is_bot(from) {
            self.bot_steps_back(chat_id, from);
        } else if let Some(c) = self.chats.get_mut(&chat_id) {
            c.remove_member(from);
        }
    }

    /// The caller takes the dialog (`imopenlines.operator.answer`, `imopenlines.session.intercept`).
    pub fn answer(&mut self, chat_id: u64, user: u64) -> Result<(), ApiError> {
        let op = self.open_session(chat_id).map(|s| s.operator_id).ok_or_else(|| ApiError::bad("ACCESS_DENIED", "You don't have access to this chat"))?;
        if op == user {
            return Ok(());
        }
        if self.is_bot(op) {
            self.bot_steps_back(chat_id, op);
        }
        self.set_operator(chat_id, user);
        Ok(())
    }

    /// `imopenlines.operator.skip`: the caller leaves, the next queue operator gets the chat.
    pub fn skip(&mut self, chat_id: u64, user: u64) -> Result<(), ApiError> {
        let op = self.open_session(chat_id).map(|s| s.operator_id);
        if op != Some(user) {
            return Err(ApiError::bad("ACCESS_DENIED_KICK", "You can not leave this chat"));
        }
        if let Some(c) = self.chats.get_mut(&chat_id) {
            c.remove_member(user);
        }
        self.transfer_to_next_in_queue(chat_id, &[user]);
        Ok(())
    }

    /// Closes the open session; everyone but the customer leaves the chat.
    pub fn finish_session(&mut self, chat_id: u64) -> Result<(), ApiError> {
        let sid = self.open_session(chat_id).map(|s| s.id).ok_or_else(|| ApiError::bad("SESSION_CLOSED", "The chat has no open session"))?;
        self.system_message(chat_id, "The conversation has been completed.");
        let now = self.now();
        if let Some(s) = self.sessions.get_mut(&sid) {
            s.open = false;
            s.date_close = Some(now);
        }
        if let Some(c) = self.chats.get_mut(&chat_id) {
            let customer = c.lines.as_ref().map_or(0, |l| l.customer_id);
            c.members.retain(|m| *m == customer);
            c.owner = 0;
        }
        Ok(())
    }

    /// Creates (or finds by phone) the CRM entity of a chat whose line has CRM on.
    pub fn bind_crm(&mut self, chat_id: u64) {
        let Some(info) = self.chats.get(&chat_id).and_then(|c| c.lines.clone()) else { return };
        if info.crm != CrmLinks::default() {
            return;
        }
        let phone = format!("+{}", info.phone_digits);
        let links = match self.crm.find_by_phone(super::crm::EntityType::Contact, &phone) {
            Some(contact) => CrmLinks { contact, ..CrmLinks::default() },
            None => {
                let lead = self.create_chat_lead(chat_id, &info);
                CrmLinks { lead, ..CrmLinks::default() }
            }
        };
        if let Some(l) = self.chats.get_mut(&chat_id).and_then(|c| c.lines.as_mut()) {
            l.crm = links;
        }
    }

    /// Creates a lead for an Open Lines chat (PHONE and `IM imol|<user code>` multifields), returns its id.
    pub fn create_chat_lead(&mut self, chat_id: u64, info: &LinesInfo) -> u64 {
        let title = self.chats.get(&chat_id).map(|c| c.title.clone()).unwrap_or_default();
        let customer = self.user(info.customer_id).cloned();
        let line = self.lines.get(&info.line_id).cloned();
        let assigned = line.as_ref().and_then(|l| l.queue.first().copied()).unwrap_or(1);
        let now = self.now();
        let fields = serde_json::json!({
            "TITLE": title,
            "NAME": customer.as_ref().map(|c| c.first_name.clone()).unwrap_or_default(),
            "LAST_NAME": customer.as_ref().map(|c| c.last_name.clone()),
            "SOURCE_ID": format!("{}|{}", info.line_id, info.connector_id.to_uppercase()),
            "SOURCE_DESCRIPTION": line.as_ref().map(|l| l.name.clone()),
            "ASSIGNED_BY_ID": assigned.to_string(),
            "PHONE": [{"VALUE": format!("+{}", info.phone_digits), "VALUE_TYPE": "WORK"}],
            "IM": [{"VALUE": format!("imol|{}", info.entity_id), "VALUE_TYPE": "OPENLINE"}],
        });
        self.crm.add(super::crm::EntityType::Lead, &fields, assigned, now)
    }

    /// `entity_data_1`: `CRM|CRM_ENTITY_TYPE|CRM_ENTITY_ID|PAUSE|WAIT_ACTION|SESSION_ID|DATE_CREATE|LINE_ID|BLOCK_DATE|BLOCK_REASON`.
    /// `LINE_ID` is `0`, as in every documented and captured example.
    pub fn entity_data_1(&self, chat: &Chat) -> String {
        let Some(l) = &chat.lines else { return String::new() };
        let crm_on = self.lines.get(&l.line_id).is_some_and(|x| x.crm);
        let (etype, eid) = primary_crm(&l.crm);
        let (sid, created) = self.sessions.get(&l.session_id).map_or((0, 0), |s| (s.id, s.date_create.timestamp()));
        format!("{}|{etype}|{eid}|N|N|{sid}|{created}|0|{}|{}", if crm_on { "Y" } else { "N" }, l.block_date, l.block_reason)
    }

    /// `entity_data_2`: `LEAD|id|COMPANY|id|CONTACT|id|DEAL|id`.
    pub fn entity_data_2(&self, chat: &Chat) -> String {
        let c = chat.lines.as_ref().map(|l| l.crm).unwrap_or_default();
        if chat.lines.is_none() {
            return String::new();
        }
        format!("LEAD|{}|COMPANY|{}|CONTACT|{}|DEAL|{}", c.lead, c.company, c.contact, c.deal)
    }

    /// `entity_data_3` (silent-mode flag).
    pub fn entity_data_3(&self, chat: &Chat) -> String {
        chat.lines.as_ref().map(|l| l.silent.clone()).unwrap_or_default()
    }
}

/// The entity a session is bound to, in Bitrix's preference order (deal, lead, contact, company).
pub(crate) fn primary_crm(c: &CrmLinks) -> (&'static str, u64) {
    if c.deal > 0 {
        ("DEAL", c.deal)
    } else if c.lead > 0 {
        ("LEAD", c.lead)
    } else if c.contact > 0 {
        ("CONTACT", c.contact)
    } else if c.company > 0 {
        ("COMPANY", c.company)
    } else {
        ("NONE", 0)
    }
}
