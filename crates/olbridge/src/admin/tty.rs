//! The jobs of the client's terminal tools, over the same REST client as the bridge:
//! `read` (`b24_openlines_reader.py`), `chat` (`b24_chat_tty.py`) and `send`
//! (`b24_send_message.py`), plus `handback`. They act as the webhook's user, who only sees Open
//! Lines chats where it is a queue operator or a member.
//!
//! # Why `send` and `chat` take the session first
//! The webhook's user is an employee: when it writes in a chat the bot serves, the bridge treats it
//! as "an operator wrote" and keeps the bot silent for the session, while on the portal the bot
//! still holds the session, so no human is told and the customer's next message gets no answer.
//! So before writing into an Open Lines chat someone else holds, they take the session for the
//! webhook's user (`imopenlines.session.intercept`, contract §5.4) and say so; `handback` ends
//! that user's session (`imopenlines.operator.finish`, §5.5) so the customer's next message starts
//! a new session, served by the line's bot again.

use std::collections::HashMap;
use std::process::ExitCode;

use anyhow::Context as _;
use olbridge_core::b24::im::{DialogMessages, ImMessage, MessagesQuery, OutgoingMessage, RecentQuery};
use olbridge_core::b24::imopenlines::DialogLookup;
use olbridge_core::b24::{B24Client, ClientOptions};
use olbridge_core::config::Config;
use olbridge_core::domain::ids::{ChatId, DialogId, MessageId};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::output::OutputError;

/// How many messages `read --once` prints per chat: one `im.dialog.messages.get` page, the most
/// the method returns at once.
pub const HISTORY_PER_CHAT: u32 = 50;

/// `olbridge read` options.
#[derive(Debug, Clone, clap::Args)]
pub struct ReadArgs {
    /// Print the recent messages of each Open Lines chat (oldest first, at most 50 per chat) and exit.
    #[arg(long)]
    pub once: bool,
}

fn client(config: &Config) -> anyhow::Result<B24Client> {
    let webhook = config.portal.webhook.clone().context("B24_WEBHOOK_BASE is not set")?;
    Ok(B24Client::new(webhook, ClientOptions::default())?)
}

fn dialog(raw: &str) -> anyhow::Result<DialogId> {
    DialogId::parse(raw).map_err(|e| anyhow::anyhow!("{e} (expected e.g. chat97669)"))
}

/// Open Lines chats the webhook's user sees, with their last message id.
async fn open_lines_chats(client: &B24Client) -> anyhow::Result<Vec<(DialogId, u64, String)>> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let page = client.im_recent_list(&RecentQuery { offset, limit: 50, skip_dialog: true, ..RecentQuery::default() }).await?;
        for item in &page.items {
            if let (Some(d), Some(_)) = (item.dialog(), &item.lines) {
                out.push((d, item.message.as_ref().map_or(0, |m| m.id), item.title.clone()));
            }
        }
        // Pages can overlap: advance by the page size, not by what came back.
        offset += 50;
        if !page.has_more || offset >= 1000 {
            return Ok(out);
        }
    }
}

/// The messages of `dialog` newer than `after`, oldest first.
async fn newer(client: &B24Client, dialog: DialogId, after: u64) -> anyhow::Result<(Vec<ImMessage>, HashMap<u64, String>)> {
    let first_id = MessageId::new(after).ok();
    let page = client.im_dialog_messages_get(dialog, MessagesQuery { first_id, last_id: None, limit: Some(HISTORY_PER_CHAT) }).await?;
    let (mut messages, names) = oldest_first(page);
    messages.retain(|m| m.id > after);
    Ok((messages, names))
}

/// The latest `limit` messages of `dialog`, oldest first.
async fn latest(client: &B24Client, d: DialogId, limit: u32) -> anyhow::Result<(Vec<ImMessage>, HashMap<u64, String>)> {
    let page = client.im_dialog_messages_get(d, MessagesQuery { first_id: None, last_id: None, limit: Some(limit) }).await?;
    Ok(oldest_first(page))
}

fn oldest_first(page: DialogMessages) -> (Vec<ImMessage>, HashMap<u64, String>) {
    let names = page.users.iter().map(|u| (u.id, if u.connector { format!("{} (customer)", u.name) } else { u.name.clone() })).collect();
    let mut messages = page.messages;
    messages.sort_by_key(|m| m.id);
    (messages, names)
}

fn print_message(dialog: DialogId, m: &ImMessage, names: &HashMap<u64, String>) -> Result<(), OutputError> {
    let who = if m.author_id == 0 { "system".to_owned() } else { names.get(&m.author_id).cloned().unwrap_or_else(|| format!("user {}", m.author_id)) };
    crate::outln!("[{dialog}] #{} {who}: {}", m.id, m.text)
}

/// `olbridge read`: prints new Open Lines messages as they arrive (Ctrl-C to stop).
pub async fn read(config: &Config, args: ReadArgs) -> anyhow::Result<ExitCode> {
    let client = client(config)?;
    let chats = open_lines_chats(&client).await?;
    if args.once {
        for (d, _, title) in &chats {
            let (messages, names) = latest(&client, *d, HISTORY_PER_CHAT).await?;
            crate::outln!("{d} {title}")?;
            if messages.len() >= HISTORY_PER_CHAT as usize {
                crate::outln!("  (its last {HISTORY_PER_CHAT} messages)")?;
            }
            for m in &messages {
                print_message(*d, m, &names)?;
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut last: HashMap<DialogId, u64> = chats.into_iter().map(|(d, id, _)| (d, id)).collect();
    eprintln!("watching {} Open Lines chat(s); new messages appear below (Ctrl-C to stop)", last.len());
    let mut tick = tokio::time::interval(config.portal.poll_interval);
    loop {
        tokio::select! {
            () = crate::cli::shutdown_signal() => return Ok(ExitCode::SUCCESS),
            _ = tick.tick() => {}
        }
        for (d, id, _) in open_lines_chats(&client).await? {
            let seen = *last.get(&d).unwrap_or(&0);
            if id > seen {
                let (messages, names) = newer(&client, d, seen).await?;
                for m in &messages {
                    print_message(d, m, &names)?;
                }
                last.insert(d, messages.last().map_or(id, |m| m.id.max(id)));
            }
        }
    }
}

/// `olbridge chat <dialog>`: a terminal chat bound to one dialog.
pub async fn chat(config: &Config, raw: &str) -> anyhow::Result<ExitCode> {
    let client = client(config)?;
    let d = dialog(raw)?;
    let (history, names) = latest(&client, d, 20).await?;
    for m in &history {
        print_message(d, m, &names)?;
    }
    let mut last = history.last().map_or(0, |m| m.id);
    eprintln!("chatting in {d} as the webhook's user; /who, /help, /quit (writing takes the chat from the bot when it holds it)");
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut tick = tokio::time::interval(config.portal.poll_interval);
    loop {
        tokio::select! {
            line = lines.next_line() => {
                let Some(line) = line? else { return Ok(ExitCode::SUCCESS) };
                match line.trim() {
                    "" => {}
                    "/quit" => return Ok(ExitCode::SUCCESS),
                    "/help" => eprintln!("type to send; /who lists the members; /quit exits"),
                    "/who" => {
                        for u in client.im_dialog_users_list(d).await? {
                            eprintln!("  {} {}{}", u.id, u.name, if u.connector { " (customer)" } else if u.bot { " (bot)" } else { "" });
                        }
                    }
                    text => {
                        take_session(&client, config, d).await?;
                        client.im_message_add(&OutgoingMessage::new(d, text)).await?;
                    }
                }
            }
            _ = tick.tick() => {
                let (messages, names) = newer(&client, d, last).await?;
                for m in &messages {
                    print_message(d, m, &names)?;
                    last = last.max(m.id);
                }
            }
        }
    }
}

/// `olbridge send <dialog> <text>`.
pub async fn send(config: &Config, raw: &str, text: &str) -> anyhow::Result<ExitCode> {
    let client = client(config)?;
    let d = dialog(raw)?;
    take_session(&client, config, d).await?;
    let id = client.im_message_add(&OutgoingMessage::new(d, text)).await?;
    crate::outln!("sent message {id}")?;
    Ok(ExitCode::SUCCESS)
}

/// Who holds an Open Lines chat's open session: `None` for other chats, `Some(0)` when nobody does
/// (the session is closed or waits in the queue).
async fn holder(client: &B24Client, d: DialogId) -> anyhow::Result<Option<(ChatId, u64)>> {
    let Some(chat) = d.chat() else { return Ok(None) };
    let info = match client.imopenlines_dialog_get(&DialogLookup::Chat(chat)).await {
        Ok(info) => info,
        // Not an Open Lines chat the webhook's user can see: nothing to take (a send into it
        // reports its own error).
        Err(e) if e.code == "ACCESS_ERROR" => return Ok(None),
        Err(e) => return Err(anyhow::Error::new(e).context(format!("cannot tell who holds {d}"))),
    };
    Ok((info.entity_type == "LINES").then_some((chat, info.owner)))
}

/// Before the webhook's user writes into `d`: takes the Open Lines session when someone else (the
/// bot, usually) holds it, and says what that means.
async fn take_session(client: &B24Client, config: &Config, d: DialogId) -> anyhow::Result<()> {
    let me = client.webhook().user_id().get();
    let Some((chat, owner)) = holder(client, d).await? else { return Ok(()) };
    if owner == 0 || owner == me {
        return Ok(());
    }
    client.imopenlines_session_intercept(chat).await.with_context(|| format!("cannot take {d} from user {owner} (imopenlines.session.intercept)"))?;
    let from = if config.portal.bot_id.is_some_and(|b| b.get() == owner) { format!("the bot (user {owner})") } else { format!("user {owner}") };
    crate::outln!(
        "You (user {me}) now own {d}: the session was taken from {from}. The bot stays silent for the rest of this session; \
         `olbridge handback {d}` ends your session, and the bot answers the customer's next message."
    )?;
    Ok(())
}

/// `olbridge handback <dialog>`: ends the webhook's user's session in an Open Lines chat, so the
/// customer's next message starts a new session with the line's bot.
pub async fn handback(config: &Config, raw: &str) -> anyhow::Result<ExitCode> {
    let client = client(config)?;
    let d = dialog(raw)?;
    let me = client.webhook().user_id().get();
    let Some((chat, owner)) = holder(&client, d).await? else {
        anyhow::bail!("{d} is not an Open Lines chat: there is no session to hand back");
    };
    if owner == 0 {
        crate::outln!("Nobody holds {d} (its session is closed or waits in the queue): nothing to hand back.")?;
        return Ok(ExitCode::SUCCESS);
    }
    if owner != me {
        crate::outln!("{d} is held by user {owner}, not by the webhook's user ({me}): only they can finish it. Nothing changed.")?;
        return Ok(ExitCode::FAILURE);
    }
    client.imopenlines_operator_finish(chat).await.with_context(|| format!("cannot finish your session in {d} (imopenlines.operator.finish)"))?;
    crate::outln!("Finished your session in {d}. The customer's next message starts a new session: the line's bot joins it and olbridge answers.")?;
    Ok(ExitCode::SUCCESS)
}
