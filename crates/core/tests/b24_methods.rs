//! Every typed call against the emulator: parameters in the casing each family expects, results
//! decoded from the documented shapes (string-or-number ids, `Y`/`N` flags, maps keyed by id).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod b24_support;

use b24_emulator::RateLimit;
use b24_support::{calls_of, emulator, fast_client};
use olbridge_core::b24::crm::CrmEntityType;
use olbridge_core::b24::im::{MessagesQuery, OutgoingMessage, RecentQuery};
use olbridge_core::b24::imbot::{BotProperties, BotRegistration, BotType, CommandLang, CommandRegistration};
use olbridge_core::b24::imopenlines::{DialogLookup, SessionMessage, TransferTarget};
use olbridge_core::domain::ids::{BotId, ChatId, DialogId, LineId, UserId};
use olbridge_core::domain::secret::Secret;
use serde_json::{Value, json};

#[tokio::test]
async fn account_and_im_calls() {
    let (emu, demo) = emulator(RateLimit::UNLIMITED).await;
    let c = fast_client(&demo.webhook_url);
    let scopes = c.scope().await.expect("scope");
    assert!(["im", "imbot", "imopenlines", "crm"].iter().all(|s| scopes.iter().any(|x| x == s)), "{scopes:?}");
    let me = c.profile().await.expect("profile");
    assert_eq!(me.id, demo.service_user_id);
    assert_eq!(c.im_user_get(None).await.expect("me").id, demo.service_user_id);
    let op = c.im_user_get(Some(UserId::new(demo.operator_id).expect("id"))).await.expect("operator");
    assert_eq!((op.id, op.bot, op.connector), (demo.operator_id, false, false));

    let m = emu.customer_writes(demo.whatsapp_line_id, "+43 660 1234567", "Hallo").await.expect("customer");
    let dialog = DialogId::Chat(ChatId::new(m.chat_id).expect("chat"));
    let page = c.im_recent_list(&RecentQuery { limit: 10, ..Default::default() }).await.expect("recent");
    let item = page.items.iter().find(|i| i.dialog() == Some(dialog)).expect("the chat is recent");
    assert_eq!(item.chat_id, m.chat_id);
    assert!(item.lines.as_ref().is_some_and(|l| l.id == m.session_id), "{item:?}");

    let users = c.im_dialog_users_list(dialog).await.expect("users");
    let customer = users.iter().find(|u| u.id == m.user_id).expect("the customer is a member");
    assert!(customer.connector && customer.extranet);
    let msgs = c.im_dialog_messages_get(dialog, MessagesQuery { limit: Some(5), ..Default::default() }).await.expect("messages");
    assert_eq!(msgs.chat_id, m.chat_id);
    assert!(msgs.messages.iter().any(|x| x.id == m.message_id && x.author_id == m.user_id && x.text == "Hallo"));
    assert!(msgs.users.iter().any(|u| u.id == m.user_id));

    let mut out = OutgoingMessage::new(dialog, "Grüß Gott!");
    out.keyboard = Some(json!({"BUTTONS": [{"TEXT": "OK", "ACTION": "SEND", "ACTION_VALUE": "ok"}]}));
    let id = c.im_message_add(&out).await.expect("im.message.add");
    assert!(id.get() > m.message_id);
    assert_eq!(calls_of(&emu, "im.message.add")[0].params["URL_PREVIEW"], "N");
    assert_eq!(c.im_dialog_writing(dialog).await.expect("writing"), Some(true));
    assert_eq!(c.im_dialog_read(dialog, Some(id)).await.expect("read"), Some(true));
}

#[tokio::test]
async fn bot_and_open_lines_calls() {
    let (emu, demo) = emulator(RateLimit::UNLIMITED).await;
    let c = fast_client(&demo.webhook_url);
    let client_id = Secret::new("methods-client");
    let handler = "http://127.0.0.1:9/events".to_owned();
    let bot = c
        .imbot_register(&BotRegistration {
            code: "methods".into(),
            kind: BotType::OpenLine,
            openline: true,
            event_message_add: handler.clone(),
            event_welcome_message: handler.clone(),
            event_bot_delete: handler.clone(),
            properties: BotProperties { name: "Assistant".into(), color: Some("AQUA".into()), ..Default::default() },
            client_id: client_id.clone(),
        })
        .await
        .expect("register");
    let bots = c.imbot_bot_list().await.expect("bots");
    assert!(bots.iter().any(|b| b.id == bot.get() && b.code == "methods" && b.openline), "{bots:?}");
    let command = CommandRegistration {
        bot_id: bot,
        command: "like".into(),
        event_command_add: handler,
        common: false,
        hidden: true,
        extranet_support: true,
        lang: vec![CommandLang { language_id: "en".into(), title: "Helpful".into(), params: None }],
    };
    assert!(c.imbot_command_register(&command, &client_id).await.expect("command") > 0);

    emu.attach_welcome_bot(demo.whatsapp_line_id, bot.get()).expect("welcome bot");
    let m = emu.customer_writes(demo.whatsapp_line_id, "+43 660 7654321", "Hi").await.expect("customer");
    let chat = ChatId::new(m.chat_id).expect("chat");
    let d = c.imopenlines_dialog_get(&DialogLookup::Chat(chat)).await.expect("dialog");
    assert_eq!((d.id, d.owner, d.entity_type.as_str()), (m.chat_id, bot.get(), "LINES"));
    assert_eq!(d.line_id().map(LineId::get), Some(demo.whatsapp_line_id));
    assert_eq!(d.session_id().map(|s| s.get()), Some(m.session_id));
    assert_eq!(d.connector(), Some("whatsappbyedna"));
    let by_session = c.imopenlines_dialog_get(&DialogLookup::Session(d.session_id().expect("session"))).await.expect("by session");
    assert_eq!(by_session.id, m.chat_id);

    let history = c.imopenlines_session_history_get(chat, None).await.expect("history");
    assert_eq!((history.chat_id, history.session_id), (m.chat_id, m.session_id));
    assert!(history.messages.iter().any(|x| x.id == m.message_id && x.sender_id == m.user_id && x.text == "Hi"));
    assert!(history.messages.windows(2).all(|w| w[0].id < w[1].id));

    let lines = c.imopenlines_config_list_get(0, 50).await.expect("lines");
    let line = lines.iter().find(|l| l.id == demo.whatsapp_line_id).expect("line 3");
    assert!(line.active && line.welcome_bot_enable && line.welcome_bot_id == bot.get(), "{line:?}");

    assert!(c.imopenlines_bot_session_message_send(chat, &SessionMessage::Welcome).await.expect("welcome"));
    let operator = TransferTarget::User(UserId::new(demo.operator_id).expect("id"));
    assert!(c.imopenlines_bot_session_transfer(chat, operator, true, Some(&client_id)).await.expect("transfer"));
    assert_eq!(emu.chat(m.chat_id).and_then(|s| s.operator_id), Some(demo.operator_id));
    assert_eq!(calls_of(&emu, "imopenlines.bot.session.transfer")[0].params["LEAVE"], "Y");

    let m2 = emu.customer_writes(demo.whatsapp_line_id, "+43 660 1111111", "Servus").await.expect("customer");
    let chat2 = ChatId::new(m2.chat_id).expect("chat");
    assert!(c.imopenlines_bot_session_finish(chat2, Some(&client_id)).await.expect("finish"));
    assert!(c.imbot_unregister(bot, &client_id).await.expect("unregister"));
}

#[tokio::test]
async fn crm_and_chatbots_v2_calls() {
    let (emu, demo) = emulator(RateLimit::UNLIMITED).await;
    let c = fast_client(&demo.webhook_url);
    let m = emu.customer_writes(demo.whatsapp_line_id, "+43 660 2222222", "Preis?").await.expect("customer");
    let d = c.imopenlines_dialog_get(&DialogLookup::Chat(ChatId::new(m.chat_id).expect("chat"))).await.expect("dialog");
    let lead_id: u64 = d.entity_data_2.split('|').nth(1).and_then(|s| s.parse().ok()).expect("a lead is bound");
    let lead = c.crm_lead_get(lead_id).await.expect("lead");
    assert_eq!(lead.id, lead_id);
    assert!(lead.im.iter().any(|f| f.value_type == "OPENLINE" && f.value.starts_with("imol|")), "{lead:?}");
    let comment = c.crm_timeline_comment_add(CrmEntityType::Lead, lead_id, "Bot answered: prices").await.expect("comment");
    assert!(comment > 0);
    assert!(calls_of(&emu, "crm.timeline.comment.add")[0].params["fields"]["COMMENT"].is_string());

    let token = Secret::new("v2-token-0123456789");
    let registered: Value = c
        .call(
            "imbot.v2.Bot.register",
            &json!({"botToken": token.expose(), "fields": {"code": "v2bot", "type": "openline", "eventMode": "fetch",
                "isSupportOpenline": true, "properties": {"name": "V2"}}}),
        )
        .await
        .expect("v2 register");
    let bot = BotId::new(registered["bot"]["id"].as_u64().expect("bot id")).expect("bot");
    emu.attach_welcome_bot(demo.other_line_ids[0], bot.get()).expect("welcome bot");
    let m = emu.customer_writes(demo.other_line_ids[0], "+43 660 3333333", "Hello v2").await.expect("customer");

    let page = c.imbot_v2_event_get(bot, &token, None, Some(10)).await.expect("events");
    assert!(!page.events.is_empty());
    assert!(page.events.windows(2).all(|w| w[0].event_id < w[1].event_id));
    let next = page.next_offset.expect("next offset");
    let dialog = DialogId::Chat(ChatId::new(m.chat_id).expect("chat"));
    let sent = c.imbot_v2_chat_message_send(bot, &token, &OutgoingMessage::new(dialog, "Hi from v2")).await.expect("send");
    assert!(sent.get() > m.message_id);
    let rest = c.imbot_v2_event_get(bot, &token, Some(next), None).await.expect("acknowledged");
    assert!(rest.events.iter().all(|e| e.event_id >= next));
}
