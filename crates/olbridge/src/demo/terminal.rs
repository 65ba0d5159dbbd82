//! The demo's terminal: you type as the WhatsApp customer; what their phone receives is printed as
//! it arrives, with the typing indicator and handoffs shown the way an operator would see them.

use std::process::ExitCode;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

use super::DemoWorld;

/// What the watcher has already shown.
#[derive(Debug, Default)]
struct Seen {
    inbox: usize,
    typing: usize,
    operator: Option<u64>,
    chat: Option<u64>,
}

const HELP: &str = "Type a message and press Enter to write as the WhatsApp customer.\n  /op <text>  the operator answers (after a handoff)\n  /finish     the operator closes the session (the bot serves the next one)\n  /help       this help\n  /quit       exit";

pub(super) async fn interactive(world: &DemoWorld) -> anyhow::Result<ExitCode> {
    banner(world);
    println!("{HELP}\n");
    let mut seen = Seen::default();
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            line = lines.next_line() => {
                let Some(line) = line? else { break };
                if !command(world, &mut seen, line.trim()).await? { break; }
            }
            _ = tick.tick() => show_updates(world, &mut seen),
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn scripted(world: &DemoWorld, texts: &[String]) -> anyhow::Result<ExitCode> {
    banner(world);
    let mut seen = Seen::default();
    for text in texts {
        println!("you> {text}");
        let before = world.emulator.customer_inbox(&world.phone).len();
        command(world, &mut seen, text).await?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            show_updates(world, &mut seen);
            if world.emulator.customer_inbox(&world.phone).len() > before {
                // Let the rest of a multi-part answer arrive.
                tokio::time::sleep(Duration::from_millis(600)).await;
                show_updates(world, &mut seen);
                break;
            }
            if tokio::time::Instant::now() > deadline {
                println!("(no reply within 30 s)");
                return Ok(ExitCode::FAILURE);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn banner(world: &DemoWorld) {
    println!("olbridge demo: a Bitrix24 portal emulator, the bridge and a demo bot, all in this process.");
    println!("  portal  {} (WhatsApp line {}, operator {})", world.emulator.base_url(), world.line_id, world.operator_id);
    println!("  bridge  http://{}/bitrix/events (bot {})", world.bridge.addr(), world.bot_id);
    println!("You are the WhatsApp customer {}.", world.phone);
}

/// Runs one input line; `false` ends the session.
async fn command(world: &DemoWorld, seen: &mut Seen, line: &str) -> anyhow::Result<bool> {
    match line {
        "" => {}
        "/quit" | "/exit" => return Ok(false),
        "/help" => println!("{HELP}"),
        "/finish" => match seen.chat {
            Some(chat) => {
                world.emulator.finish_session(chat).await?;
                println!("  (the operator closed the session; your next message starts a new one, served by the bot)");
            }
            None => println!("  (no chat yet: write something first)"),
        },
        _ if line.starts_with("/op ") => match seen.chat {
            Some(chat) => {
                // The operator who has the chat answers; before any handoff, the line's operator.
                let operator = world.emulator.chat(chat).and_then(|c| c.operator_id).filter(|op| *op != world.bot_id).unwrap_or(world.operator_id);
                world.emulator.operator_writes(chat, operator, line.trim_start_matches("/op ").trim()).await?;
            }
            None => println!("  (no chat yet: write something first)"),
        },
        text => {
            let sent = world.emulator.customer_writes(world.line_id, &world.phone, text).await?;
            seen.chat = Some(sent.chat_id);
        }
    }
    Ok(true)
}

/// Prints what changed since the last look: new messages on the customer's phone, the typing
/// indicator, a change of operator.
fn show_updates(world: &DemoWorld, seen: &mut Seen) {
    let typing = world.emulator.calls().iter().filter(|c| c.method == "imbot.chat.sendTyping" && c.status == 200).count();
    if typing > seen.typing {
        println!("  (bot is typing…)");
        seen.typing = typing;
    }
    let inbox = world.emulator.customer_inbox(&world.phone);
    for m in inbox.iter().skip(seen.inbox) {
        let who = if m.author_id == world.bot_id { "bot" } else { "operator" };
        println!("{who}> {}", m.text);
    }
    seen.inbox = seen.inbox.max(inbox.len());
    if let Some(chat) = seen.chat.and_then(|c| world.emulator.chat(c)) {
        let operator = chat.operator_id;
        if operator != seen.operator {
            if let Some(op) = operator.filter(|op| *op != world.bot_id) {
                println!("  (the chat is now with operator {op}; type /op <text> to answer as them)");
            }
            seen.operator = operator;
        }
    }
}
