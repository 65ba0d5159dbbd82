//! The demo's terminal: you type as the WhatsApp customer; what their phone receives is printed as
//! it arrives, with the typing indicator and handoffs shown the way an operator would see them.
//!
//! Lines starting with `/` are the demo's commands, never the customer's text: a mistyped command
//! (a bare `/op`, `/finsh`) must not reach the bot as if the customer had written it. `--say` runs
//! the same commands; only the customer's text waits for the bridge to finish its turn, which the
//! bridge's own turn log tells (a command expects no reply, and none would come).

use std::process::ExitCode;
use std::time::Duration;

use olbridge_core::ports::TurnLog as _;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::DemoWorld;
use crate::output::OutputError;

/// What the watcher has already shown.
#[derive(Debug, Default)]
struct Seen {
    inbox: usize,
    typing: usize,
    operator: Option<u64>,
    chat: Option<u64>,
}

const HELP: &str = "Type a message and press Enter to write as the WhatsApp customer.\n  /op <text>  the operator answers (after a handoff)\n  /finish     the operator closes the session (the bot serves the next one)\n  /help       this help\n  /quit       exit";

/// How long `--say` waits for the bridge to finish a customer message's turn.
const TURN_TIMEOUT: Duration = Duration::from_secs(30);

/// One line typed at the prompt or given with `--say`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Input<'a> {
    /// An empty line.
    Nothing,
    /// `/quit` or `/exit`.
    Quit,
    /// `/help`.
    Help,
    /// `/finish`: the operator closes the session.
    Finish,
    /// `/op <text>`: the operator writes.
    Op(&'a str),
    /// `/op` without a text.
    OpUsage,
    /// Another `/command`.
    Unknown(&'a str),
    /// The customer writes.
    Customer(&'a str),
}

impl<'a> Input<'a> {
    fn parse(line: &'a str) -> Self {
        let line = line.trim();
        let (command, rest) = line.split_once(char::is_whitespace).map_or((line, ""), |(c, r)| (c, r.trim()));
        match command {
            "" => Self::Nothing,
            "/quit" | "/exit" => Self::Quit,
            "/help" => Self::Help,
            "/finish" => Self::Finish,
            "/op" if rest.is_empty() => Self::OpUsage,
            "/op" => Self::Op(rest),
            c if c.starts_with('/') => Self::Unknown(c),
            _ => Self::Customer(line),
        }
    }
}

/// What running an input did.
enum Step {
    Continue,
    Quit,
    /// The customer's message, whose turn `--say` waits for.
    Sent(b24_emulator::CustomerMessage),
}

pub(super) async fn interactive(world: &DemoWorld) -> anyhow::Result<ExitCode> {
    banner(world)?;
    crate::outln!("{HELP}\n")?;
    let mut seen = Seen::default();
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    prompt()?;
    loop {
        tokio::select! {
            line = lines.next_line() => {
                let Some(line) = line? else { break };
                if matches!(command(world, &mut seen, Input::parse(&line)).await?, Step::Quit) {
                    break;
                }
                show_updates(world, &mut seen, false)?;
                prompt()?;
            }
            _ = tick.tick() => {
                if show_updates(world, &mut seen, true)? {
                    prompt()?;
                }
            }
        }
    }
    crate::outln!()?;
    Ok(ExitCode::SUCCESS)
}

fn prompt() -> Result<(), OutputError> {
    crate::output::write_flush(format_args!("you> "))
}

pub(super) async fn scripted(world: &DemoWorld, texts: &[String]) -> anyhow::Result<ExitCode> {
    banner(world)?;
    let mut seen = Seen::default();
    for text in texts {
        crate::outln!("you> {text}")?;
        match command(world, &mut seen, Input::parse(text)).await? {
            Step::Quit => break,
            Step::Continue => show_updates(world, &mut seen, false).map(drop)?,
            Step::Sent(sent) => {
                if !wait_for_turn(world, &mut seen, &sent).await? {
                    crate::outln!("(no answer within {} s)", TURN_TIMEOUT.as_secs())?;
                    return Ok(ExitCode::FAILURE);
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Waits until the bridge has logged the turn of `sent` (so every reply of it is posted), showing
/// updates meanwhile; `false` on timeout. Returns at once when the bot does not hold the chat: no
/// event reaches the bridge then, so no turn will come.
async fn wait_for_turn(world: &DemoWorld, seen: &mut Seen, sent: &b24_emulator::CustomerMessage) -> anyhow::Result<bool> {
    let key_suffix = format!(":msg:{}", sent.message_id);
    let deadline = tokio::time::Instant::now() + TURN_TIMEOUT;
    loop {
        // A handoff posts its message before moving the chat, so both conditions come after it.
        let bot_left = world.emulator.chat(sent.chat_id).is_some_and(|c| c.operator_id != Some(world.bot_id));
        let turns = world.bridge.store().recent(50).await?;
        let done = bot_left || turns.iter().any(|t| t.keys.iter().any(|k| k.as_str().ends_with(&key_suffix)));
        show_updates(world, seen, false)?;
        if done {
            return Ok(true);
        }
        if tokio::time::Instant::now() > deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn banner(world: &DemoWorld) -> Result<(), OutputError> {
    crate::outln!("olbridge demo: a Bitrix24 portal emulator, the bridge and a demo bot, all in this process.")?;
    crate::outln!("  portal  {} (WhatsApp line {}, operator {})", world.emulator.base_url(), world.line_id, world.operator_id)?;
    crate::outln!("  bridge  http://{}/bitrix/events (bot {})", world.bridge.addr(), world.bot_id)?;
    crate::outln!("You are the WhatsApp customer {}.", world.phone)
}

/// Runs one input.
async fn command(world: &DemoWorld, seen: &mut Seen, input: Input<'_>) -> anyhow::Result<Step> {
    let open_chat = seen.chat.and_then(|c| world.emulator.chat(c)).filter(|c| c.session_open);
    match input {
        Input::Nothing => {}
        Input::Quit => return Ok(Step::Quit),
        Input::Help => crate::outln!("{HELP}")?,
        Input::OpUsage => crate::outln!("  (usage: /op <text> — the operator writes <text> to the customer)")?,
        Input::Unknown(c) => crate::outln!("  (unknown command {c}; /help lists the commands)")?,
        Input::Finish | Input::Op(_) if seen.chat.is_none() => crate::outln!("  (no chat yet: write something first)")?,
        Input::Finish | Input::Op(_) if open_chat.is_none() => crate::outln!("  (there is no open session: your next message starts one, served by the bot)")?,
        Input::Finish => {
            if let Some(chat) = open_chat {
                world.emulator.finish_session(chat.chat_id).await?;
                crate::outln!("  (the operator closed the session; your next message starts a new one, served by the bot)")?;
            }
        }
        Input::Op(text) => {
            if let Some(chat) = open_chat {
                // The operator who has the chat answers; before any handoff, the line's operator.
                let operator = chat.operator_id.filter(|op| *op != world.bot_id).unwrap_or(world.operator_id);
                world.emulator.operator_writes(chat.chat_id, operator, text).await?;
            }
        }
        Input::Customer(text) => {
            let sent = world.emulator.customer_writes(world.line_id, &world.phone, text).await?;
            seen.chat = Some(sent.chat_id);
            return Ok(Step::Sent(sent));
        }
    }
    Ok(Step::Continue)
}

/// Prints what changed since the last look: new messages on the customer's phone, the typing
/// indicator, a change of operator. With `at_prompt`, the first line overwrites the shown prompt.
/// Returns whether anything was printed.
fn show_updates(world: &DemoWorld, seen: &mut Seen, at_prompt: bool) -> Result<bool, OutputError> {
    let mut lines = Vec::new();
    let typing = world.emulator.calls().iter().filter(|c| c.method == "imbot.chat.sendTyping" && c.status == 200).count();
    if typing > seen.typing {
        lines.push("  (bot is typing…)".to_owned());
        seen.typing = typing;
    }
    let inbox = world.emulator.customer_inbox(&world.phone);
    for m in inbox.iter().skip(seen.inbox) {
        let who = if m.author_id == world.bot_id { "bot" } else { "operator" };
        lines.push(format!("{who}> {}", m.text));
    }
    seen.inbox = seen.inbox.max(inbox.len());
    if let Some(chat) = seen.chat.and_then(|c| world.emulator.chat(c)) {
        let operator = chat.operator_id;
        if operator != seen.operator {
            if let Some(op) = operator.filter(|op| *op != world.bot_id) {
                lines.push(format!("  (the chat is now with operator {op}; type /op <text> to answer as them)"));
            }
            seen.operator = operator;
        }
    }
    for (i, line) in lines.iter().enumerate() {
        let erase = if at_prompt && i == 0 { "\r" } else { "" };
        crate::outln!("{erase}{line}")?;
    }
    Ok(!lines.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_never_sent_as_the_customers_text() {
        assert_eq!(Input::parse("  "), Input::Nothing);
        assert_eq!(Input::parse("/op"), Input::OpUsage);
        assert_eq!(Input::parse("/op   "), Input::OpUsage);
        assert_eq!(Input::parse("/op Hi, Olga here."), Input::Op("Hi, Olga here."));
        assert_eq!(Input::parse("/op\tHi"), Input::Op("Hi"));
        assert_eq!(Input::parse("/opera"), Input::Unknown("/opera"));
        assert_eq!(Input::parse("/finsh"), Input::Unknown("/finsh"));
        assert_eq!(Input::parse("/finish"), Input::Finish);
        assert_eq!(Input::parse("/quit"), Input::Quit);
        assert_eq!(Input::parse("/help"), Input::Help);
        assert_eq!(Input::parse(" When are you open? "), Input::Customer("When are you open?"));
        assert_eq!(Input::parse("0"), Input::Customer("0"));
    }
}
