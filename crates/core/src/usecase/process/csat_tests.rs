//! The CSAT prompt's keyboard and the 👍/👎 press (`ONIMCOMMANDADD`) through `process`: the buttons
//! only where the connector shows them, a press recorded once on the latest prompt, never by an
//! operator, never on another message.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::Arc;

use super::process;
use super::tests::{CHAT, World, customer, owner, world};
use crate::config::{CsatSettings, KeyboardMode};
use crate::contract::t;
use crate::domain::event::{Job, PortalEvent};
use crate::domain::ids::{BotId, ChatId, DialogId, LineId, MemberId, MessageId, PortalDomain, SessionId, UserId};
use crate::domain::message::{Author, AuthorKind, LinesContext, PortalRef};
use crate::ports::TurnLog;
use crate::usecase::csat::{COMMAND, Csat};

fn with_csat(keyboard: KeyboardMode) -> World {
    let mut w = world();
    let settings = CsatSettings { every: 1, keyboard, ..CsatSettings::default() };
    w.deps.csat = Some(Arc::new(Csat::new(w.store.clone(), settings).expect("on")));
    w
}

/// A customer message from a chat on `connector`.
fn on(connector: &str, id: u64, text: &str) -> Job {
    let mut job = customer(id, text);
    if let PortalEvent::Message(m) = &mut job.event {
        m.lines.connector = Some(connector.to_owned());
        m.lines.user_code = Some(format!("{connector}|1|abc|42"));
    }
    Job::new(job.event, t(0))
}

fn press(message: MessageId, params: &str, kind: AuthorKind) -> Job {
    let user = if kind == AuthorKind::Customer { 42 } else { 9 };
    let chat = ChatId::new(CHAT).unwrap();
    let portal = PortalRef { member_id: MemberId::parse("unit").unwrap(), domain: PortalDomain::parse("unit.bitrix24.test").unwrap() };
    let event = PortalEvent::Command {
        portal,
        bot_id: BotId::new(700).unwrap(),
        chat_id: chat,
        dialog_id: DialogId::Chat(chat),
        command: COMMAND.into(),
        params: params.into(),
        message_id: message,
        author: Author { id: UserId::new(user).ok(), name: "Ana".into(), kind },
        lines: LinesContext { line_id: LineId::new(1).ok(), session_id: SessionId::new(301).ok(), ..LinesContext::default() },
        sent_at: t(1),
    };
    Job::new(event, t(1))
}

async fn ratings(w: &World) -> Vec<String> {
    w.store.recent(50).await.unwrap().iter().filter_map(|r| r.trace.csat.clone()).collect()
}

#[tokio::test]
async fn the_keyboard_goes_only_where_the_connector_shows_it() {
    let w = with_csat(KeyboardMode::Auto);
    process(&w.deps, &[on("whatsappbyedna", 1, "hello")], &owner()).await;
    assert_eq!(w.portal.posts().len(), 2, "the answer and the numbered prompt");
    assert!(w.portal.keyboards().is_empty());
    let w = with_csat(KeyboardMode::Auto);
    process(&w.deps, &[on("livechat", 1, "hello")], &owner()).await;
    assert_eq!(w.portal.keyboards().len(), 1, "on the prompt only");
    let w = with_csat(KeyboardMode::Never);
    process(&w.deps, &[on("livechat", 1, "hello")], &owner()).await;
    assert!(w.portal.keyboards().is_empty());
}

#[tokio::test]
async fn a_press_is_recorded_once_on_the_latest_prompt_and_never_reaches_the_bot() {
    let w = with_csat(KeyboardMode::Auto);
    process(&w.deps, &[on("livechat", 1, "hello")], &owner()).await;
    let prompt = w.portal.keyboards()[0];
    let forged = MessageId::new(prompt.get() + 7).unwrap();
    let jobs = [
        press(prompt, "up", AuthorKind::Operator), // an operator tries the button in Bitrix24
        press(forged, "up", AuthorKind::Customer),
        press(prompt, "down", AuthorKind::Customer),
        press(prompt, "down", AuthorKind::Customer), // the same press delivered twice
        press(prompt, "up", AuthorKind::Customer),
    ];
    let r = process(&w.deps, &jobs, &owner()).await;
    assert_eq!(r.finished, [true; 5]);
    let reasons: Vec<String> = r
        .outcomes
        .iter()
        .map(|o| match o {
            crate::domain::turn::TurnOutcome::Ignored { reason } => reason.clone(),
            other => other.name().to_owned(),
        })
        .collect();
    assert_eq!(reasons, ["csat_press:not_customer", "csat_press:unknown_message", "csat", "csat_press:already_rated"]);
    assert_eq!(ratings(&w).await, ["down"]);
    let rated = w.store.recent(50).await.unwrap().into_iter().find(|r| r.trace.csat.is_some()).unwrap();
    assert_eq!((rated.trace.line_id, rated.session_id), (Some(1), Some(301)), "counted on the chat's line");
    assert_eq!(w.bot.texts(), ["hello"], "the press never reaches the bot");
    assert_eq!(w.portal.posts().len(), 2, "and is not answered in the chat");
}
