//! Many chats at once against a rate-limited portal.
