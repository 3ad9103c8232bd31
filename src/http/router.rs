//! The routing table: every endpoint is one row of (method, path pattern,
//! route). Patterns use `{name}` for a path segment; the matched pattern is
//! also the route's label in metrics and logs.

/// Every endpoint the server answers (static files are the fall-through).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    Healthz,
    Readyz,
    Metrics,
    Register,
    Login,
    Logout,
    RefreshToken,
    Me,
    UpdateMe,
    Users,
    CreateUser,
    Rooms,
    CreateRoom,
    AddMember,
    RemoveMember,
    RoomHistory,
    RoomPost,
    Conversations,
    OpenConversation,
    ConversationHistory,
    ConversationPost,
    Ignores,
    Ignore,
    Unignore,
    AdminExport,
    RoomUpload,
    ConversationUpload,
    Attachment,
    Search,
    WebSocket,
    LongPoll,
    Bots,
    CreateBot,
    DeleteBot,
    RotateBotKey,
    BotDeliveries,
    RoomHooks,
    CreateRoomHook,
    DeleteRoomHook,
    IncomingHook,
    PasswordForgot,
    PasswordReset,
    UpdateBot,
}

use Route::*;

/// (method, pattern, route). `*` matches any method.
const TABLE: &[(&str, &str, Route)] = &[
    ("GET", "/healthz", Healthz),
    ("GET", "/readyz", Readyz),
    ("GET", "/metrics", Metrics),
    ("POST", "/api/register", Register),
    ("POST", "/api/login", Login),
    ("POST", "/api/logout", Logout),
    ("POST", "/api/token/refresh", RefreshToken),
    ("GET", "/api/me", Me),
    ("PATCH", "/api/me", UpdateMe),
    ("GET", "/api/users", Users),
    ("POST", "/api/users", CreateUser),
    ("GET", "/api/rooms", Rooms),
    ("POST", "/api/rooms", CreateRoom),
    ("POST", "/api/rooms/{name}/members", AddMember),
    (
        "DELETE",
        "/api/rooms/{name}/members/{username}",
        RemoveMember,
    ),
    ("GET", "/api/rooms/{name}/messages", RoomHistory),
    ("POST", "/api/rooms/{name}/messages", RoomPost),
    ("GET", "/api/conversations", Conversations),
    ("POST", "/api/conversations", OpenConversation),
    (
        "GET",
        "/api/conversations/{id}/messages",
        ConversationHistory,
    ),
    ("POST", "/api/conversations/{id}/messages", ConversationPost),
    ("GET", "/api/me/ignores", Ignores),
    ("PUT", "/api/me/ignores/{username}", Ignore),
    ("DELETE", "/api/me/ignores/{username}", Unignore),
    ("GET", "/api/admin/export", AdminExport),
    ("POST", "/api/rooms/{name}/attachments", RoomUpload),
    (
        "POST",
        "/api/conversations/{id}/attachments",
        ConversationUpload,
    ),
    ("GET", "/api/attachments/{id}", Attachment),
    ("GET", "/api/search", Search),
    ("*", "/socket/websocket", WebSocket),
    ("*", "/socket/longpoll", LongPoll),
    ("GET", "/api/bots", Bots),
    ("POST", "/api/bots", CreateBot),
    ("DELETE", "/api/bots/{name}", DeleteBot),
    ("POST", "/api/bots/{name}/key", RotateBotKey),
    ("GET", "/api/bots/{name}/deliveries", BotDeliveries),
    ("PATCH", "/api/bots/{name}", UpdateBot),
    ("GET", "/api/rooms/{name}/hooks", RoomHooks),
    ("POST", "/api/rooms/{name}/hooks", CreateRoomHook),
    ("DELETE", "/api/rooms/{name}/hooks/{id}", DeleteRoomHook),
    ("POST", "/hooks/{token}", IncomingHook),
    ("POST", "/api/password/forgot", PasswordForgot),
    ("POST", "/api/password/reset", PasswordReset),
];

/// A matched row: the route, its pattern, and the `{…}` segments in order.
#[derive(Debug)]
pub struct Matched {
    pub route: Route,
    pub pattern: &'static str,
    pub params: Vec<String>,
}

/// Finds the row for `method` and `path`. HEAD matches GET rows.
pub fn find(method: &str, path: &str) -> Option<Matched> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let method = if method == "HEAD" { "GET" } else { method };
    TABLE.iter().find_map(|&(m, pattern, route)| {
        if m != "*" && m != method {
            return None;
        }
        let parts: Vec<&str> = pattern.split('/').filter(|s| !s.is_empty()).collect();
        if parts.len() != segments.len() {
            return None;
        }
        let mut params = Vec::new();
        for (part, segment) in parts.iter().zip(&segments) {
            if part.starts_with('{') {
                params.push(super::query::decode(segment));
            } else if part != segment {
                return None;
            }
        }
        Some(Matched {
            route,
            pattern,
            params,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_rows_and_params() {
        let m = find("DELETE", "/api/rooms/dev/members/ada").unwrap();
        assert_eq!(m.route, RemoveMember);
        assert_eq!(m.params, vec!["dev", "ada"]);
        assert_eq!(m.pattern, "/api/rooms/{name}/members/{username}");
        assert_eq!(find("HEAD", "/healthz").unwrap().route, Healthz);
        assert_eq!(find("POST", "/socket/websocket").unwrap().route, WebSocket);
        assert!(find("GET", "/api/register").is_none());
        assert!(find("GET", "/api/rooms/dev").is_none());
        assert_eq!(find("GET", "/api/rooms/").unwrap().route, Rooms);
    }
}
