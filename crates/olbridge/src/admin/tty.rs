//! The jobs of the client's terminal tools, over the same REST client as the bridge:
//! `read` (`b24_openlines_reader.py`), `chat` (`b24_chat_tty.py`) and `send`
//! (`b24_send_message.py`). They act as the webhook's user, who only sees Open Lines chats where it
//! is a queue operator or a member.

use std::collections::HashMap;
use std::process::ExitCode;

use anyhow::Context as _;
use olbridge_core::b24::im::{DialogMessages, ImMessage, MessagesQuery, OutgoingMessage, RecentQuery};
use olbridge_core::b24::{B24Client, ClientOptions};
use olbridge_core::config::Config;
use olbridge_core::domain::ids::{DialogId, MessageId};
use tokio::io::{AsyncBufReadExt, BufReader};

/// `olbridge read` options.
#[derive(Debug, Clone, clap::Args)]
pub struct ReadArgs {
    /// Print the latest message of each Open Lines chat and exit.
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
    let page: DialogMessages = client.im_dialog_messages_get(dialog, MessagesQuery { first_id, last_id: None, limit: Some(50) }).await?;
    let names = page.users.iter().map(|u| (u.id, if u.connector { format!("{} (customer)", u.name) } else { u.name.clone() })).collect();
    let mut messages = page.messages;
    messages.retain(|m| m.id > after);
    messages.sort_by_key(|m| m.id);
    Ok((messages, names))
}

fn print_message(dialog: DialogId, m: &ImMessage, names: &HashMap<u64, String>) {
    let who = if m.author_id == 0 { "system".to_owned() } else { names.get(&m.author_id).cloned().unwrap_or_else(|| format!("user {}", m.author_id)) };
    println!("[{dialog}] #{} {who}: {}", m.id, m.text);
}

/// `olbridge read`: prints new Open Lines messages as they arrive (Ctrl-C to stop).
pub async fn read(config: &Config, args: ReadArgs) -> anyhow::Result<ExitCode> {
    let client = client(config)?;
    let mut last: HashMap<DialogId, u64> = HashMap::new();
    for (d, id, title) in open_lines_chats(&client).await? {
        if args.once {
            let (messages, names) = newer(&client, d, id.saturating_sub(1)).await?;
            println!("{d} {title}");
            for m in &messages {
                print_message(d, m, &names);
            }
        }
        last.insert(d, id);
    }
    if args.once {
        return Ok(ExitCode::SUCCESS);
    }
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
                    print_message(d, m, &names);
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
    let (history, names) = latest(&client, d).await?;
    for m in &history {
        print_message(d, m, &names);
    }
    let mut last = history.last().map_or(0, |m| m.id);
    eprintln!("chatting in {d} as the webhook's user; /who, /help, /quit");
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
                        client.im_message_add(&OutgoingMessage::new(d, text)).await?;
                    }
                }
            }
            _ = tick.tick() => {
                let (messages, names) = newer(&client, d, last).await?;
                for m in &messages {
                    print_message(d, m, &names);
                    last = last.max(m.id);
                }
            }
        }
    }
}

async fn latest(client: &B24Client, d: DialogId) -> anyhow::Result<(Vec<ImMessage>, HashMap<u64, String>)> {
    let page = client.im_dialog_messages_get(d, MessagesQuery { first_id: None, last_id: None, limit: Some(20) }).await?;
    let names = page.users.iter().map(|u| (u.id, u.name.clone())).collect();
    let mut messages = page.messages;
    messages.sort_by_key(|m| m.id);
    Ok((messages, names))
}

/// `olbridge send <dialog> <text>`.
pub async fn send(config: &Config, raw: &str, text: &str) -> anyhow::Result<ExitCode> {
    let client = client(config)?;
    let id = client.im_message_add(&OutgoingMessage::new(dialog(raw)?, text)).await?;
    println!("sent message {id}");
    Ok(ExitCode::SUCCESS)
}
