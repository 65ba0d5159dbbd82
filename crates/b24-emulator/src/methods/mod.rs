//! REST methods, one module per family, each exporting a `METHODS` table.
//!
//! [`misc`] (`scope`, `profile`, `batch`, `event.bind`), [`im`], [`im_v2`] (`im.v2.Event.*`), [`imbot`] (v1 chatbots), [`imbot_v2`]
//! (Chatbots 2.0), [`imopenlines`] (sessions, operators, lines, dialogs) and [`crm`]. Parameters and errors follow
//! the contract's per-method tables; value types follow each method's documented example.

pub(crate) mod crm;
pub(crate) mod im;
pub(crate) mod im_v2;
pub(crate) mod imbot;
pub(crate) mod imbot_v2;
pub(crate) mod imopenlines;
pub(crate) mod imopenlines_read;
pub(crate) mod misc;

use crate::rest::dispatch::MethodDef;
use crate::rest::errors::ApiError;
use crate::rest::params::Param;
use crate::state::Portal;
use serde_json::Value;

/// Every method.
pub(crate) fn all() -> impl Iterator<Item = &'static MethodDef> {
    misc::METHODS.iter().chain(im::METHODS).chain(im_v2::METHODS).chain(imbot::METHODS).chain(imbot_v2::METHODS).chain(imopenlines::METHODS).chain(crm::METHODS)
}

/// A positive integer parameter (PHP `intval(...) > 0`), else `None`.
pub(crate) fn pos_int(p: &Param, key: &str) -> Option<u64> {
    p.get(key).and_then(Param::int).filter(|n| *n > 0).and_then(|n| u64::try_from(n).ok())
}

/// A non-empty trimmed string parameter.
pub(crate) fn text(p: &Param, key: &str) -> Option<String> {
    p.get(key).and_then(Param::text).map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// `Y`-flag parameter.
pub(crate) fn yes(p: &Param, key: &str) -> bool {
    p.get(key).is_some_and(Param::is_yes)
}

/// A JSON-ish parameter (`KEYBOARD`, `ATTACH`): a JSON string is decoded (`CUtil::JsObjectToPhp`), a structure is
/// taken as is. `Err` for a string that is not JSON.
pub(crate) fn json_param(p: &Param, key: &str) -> Result<Option<Value>, ()> {
    match p.get(key) {
        None => Ok(None),
        Some(v) if v.is_php_empty() => Ok(None),
        Some(Param::Str(s)) => serde_json::from_str::<Value>(s).map(Some).map_err(|_| ()),
        Some(v) => Ok(Some(v.to_json())),
    }
}

/// The chat behind a `DIALOG_ID` of the form `chat<N>`.
pub(crate) fn chat_of_dialog(portal: &Portal, dialog_id: &str) -> Option<u64> {
    Portal::chat_from_dialog(dialog_id).filter(|id| portal.chats.contains_key(id))
}

/// Whether a dialog id is well-formed (`chat<N>`, `sg<N>` or a user id), as `Common::isDialogId`.
pub(crate) fn is_dialog_id(s: &str) -> bool {
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    digits(s) || s.strip_prefix("chat").is_some_and(digits) || s.strip_prefix("sg").is_some_and(digits)
}

/// `CLIENT_ID` → `APP_ID` (`custom<CLIENT_ID>`); 403 `ACCESS_DENIED` when missing (webhook calls only).
pub(crate) fn client_app(p: &Param) -> Result<String, ApiError> {
    text(p, "CLIENT_ID").map(|c| format!("custom{c}")).ok_or_else(ApiError::no_client_id)
}

/// SRC `im_rest.php`: an explicit `BOT_ID` must exist and belong to the app; without one, the app's first bot.
pub(crate) fn resolve_bot(portal: &Portal, p: &Param, app_id: &str) -> Result<u64, ApiError> {
    let not_found = || ApiError::bad("BOT_ID_ERROR", "Bot not found");
    if p.has("BOT_ID") {
        let id = pos_int(p, "BOT_ID").ok_or_else(not_found)?;
        let bot = portal.bots.get(&id).ok_or_else(not_found)?;
        if bot.app_id != app_id {
            return Err(ApiError::bad("APP_ID_ERROR", "Bot was installed by another rest application"));
        }
        Ok(id)
    } else {
        portal.first_bot_of_app(app_id).ok_or_else(not_found)
    }
}

/// `ATTACH`, `KEYBOARD` and `MENU` are limited to 30 KB each (contract §4.3).
const MAX_BLOCK_BYTES: usize = 30 * 1024;

/// Refuses an `ATTACH` or `KEYBOARD` over the limit with its documented `*_OVERSIZE` error.
pub(crate) fn within_block_limit(value: Option<&Value>, code: &'static str, what: &str) -> Result<(), ApiError> {
    if value.is_some_and(|v| v.to_string().len() > MAX_BLOCK_BYTES) {
        return Err(ApiError::bad(code, &format!("You have exceeded the maximum allowable size of {what}")));
    }
    Ok(())
}
