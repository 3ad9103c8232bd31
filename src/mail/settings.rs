//! What the mail settings mean: the `smtp_url` schemes, and the checks run
//! with the rest of the configuration.
//!
//! - `smtps://[user@]host[:port]`: TLS from the first byte (port 465).
//! - `smtp://[user@]host[:port]`: STARTTLS, required: nothing is sent to a
//!   server that does not offer it (port 587).
//! - `smtp+plain://host[:port]`: no TLS at all (port 25), for a relay on this
//!   machine or a private network; credentials are refused there.
//!
//! The password never sits in the URL: it is `smtp_password`
//! (`CONFAB_SMTP_PASSWORD` or `CONFAB_SMTP_PASSWORD_FILE`).

use crate::config::Config;

/// How the connection to the mail server is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Security {
    /// TLS from the first byte.
    Tls,
    /// Plain, upgraded with STARTTLS before anything else is said.
    StartTls,
    /// No TLS.
    Plain,
}

/// A parsed `smtp_url`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmtpServer {
    pub security: Security,
    pub host: String,
    pub port: u16,
    pub user: Option<String>,
}

/// Parses `smtp_url`. The error never repeats the URL.
pub fn parse_smtp_url(url: &str) -> Result<SmtpServer, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or("must be smtps://, smtp:// or smtp+plain://host[:port]")?;
    let (security, default_port) = match scheme.to_ascii_lowercase().as_str() {
        "smtps" => (Security::Tls, 465),
        "smtp" => (Security::StartTls, 587),
        "smtp+plain" => (Security::Plain, 25),
        _ => return Err("the scheme must be smtps, smtp or smtp+plain".into()),
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains(['/', '?', '#']) {
        return Err("must be scheme://[user@]host[:port], without a path or query".into());
    }
    let (user, host_port) = match rest.rsplit_once('@') {
        Some((user, host_port)) => (Some(user), host_port),
        None => (None, rest),
    };
    if let Some(user) = user {
        if user.contains(':') {
            return Err(
                "must not hold a password: set CONFAB_SMTP_PASSWORD or CONFAB_SMTP_PASSWORD_FILE"
                    .into(),
            );
        }
        if security == Security::Plain {
            return Err(
                "smtp+plain:// sends credentials in clear: use smtp:// (STARTTLS) or smtps://"
                    .into(),
            );
        }
    }
    let user = user
        .map(crate::http::query::decode_percent)
        .filter(|u| !u.is_empty());
    let (host, port) = split_host_port(host_port)?;
    if host.is_empty() {
        return Err("names no host".into());
    }
    Ok(SmtpServer {
        security,
        host,
        port: port.unwrap_or(default_port),
        user,
    })
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`.
fn split_host_port(text: &str) -> Result<(String, Option<u16>), String> {
    let (host, port) = if let Some(v6) = text.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or("has an unclosed '['")?;
        (host, after.strip_prefix(':'))
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    let port = port
        .map(|p| {
            p.parse::<u16>()
                .map_err(|_| format!("has a bad port {p:?}"))
        })
        .transpose()?;
    Ok((host.to_string(), port))
}

/// `public_url` without a trailing slash.
pub fn base_url(cfg: &Config) -> &str {
    cfg.public_url.trim_end_matches('/')
}

/// The first problem with the mail settings, as (key, value to show, reason).
pub fn problem(cfg: &Config) -> Option<(&'static str, Option<String>, String)> {
    if cfg.smtp_url.is_empty() {
        return None;
    }
    if let Err(reason) = parse_smtp_url(&cfg.smtp_url) {
        return Some(("smtp_url", None, reason));
    }
    if cfg.mail_from.is_empty() {
        return Some((
            "mail_from",
            None,
            "must be set when smtp_url is (e.g. \"Confab <chat@example.com>\")".into(),
        ));
    }
    if cfg.mail_from.parse::<lettre::message::Mailbox>().is_err() {
        return Some((
            "mail_from",
            Some(cfg.mail_from.clone()),
            "is not a mail address (e.g. \"Confab <chat@example.com>\")".into(),
        ));
    }
    let public = &cfg.public_url;
    let scheme_ok = public.starts_with("https://") || public.starts_with("http://");
    if !scheme_ok || public.contains(['?', '#']) || public.split("://").nth(1) == Some("") {
        return Some((
            "public_url",
            Some(public.clone()),
            "must be set when smtp_url is, as http(s)://host[/path] (e.g. \"https://chat.example.com\")".into(),
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_and_ports() {
        let s = parse_smtp_url("smtps://me%40example.com@mail.example.com").unwrap();
        assert_eq!(s.security, Security::Tls);
        assert_eq!(s.port, 465);
        assert_eq!(s.user.as_deref(), Some("me@example.com"));
        let s = parse_smtp_url("smtp://u@mail.example.com:2525").unwrap();
        assert_eq!((s.security, s.port), (Security::StartTls, 2525));
        let s = parse_smtp_url("smtp+plain://[::1]:25").unwrap();
        assert_eq!(
            (s.security, s.host.as_str(), s.user),
            (Security::Plain, "::1", None)
        );
    }

    #[test]
    fn refusals_never_echo_the_url() {
        let e = parse_smtp_url("smtp://u:hunter2@host").unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
        assert!(parse_smtp_url("smtp+plain://u@host").is_err());
        assert!(parse_smtp_url("http://host").is_err());
        assert!(parse_smtp_url("smtp://host:99999").is_err());
        assert!(parse_smtp_url("smtp://host/path").is_err());
    }

    #[test]
    fn mail_settings_need_from_and_public_url() {
        let mut cfg = Config {
            smtp_url: "smtp+plain://127.0.0.1:25".into(),
            ..Config::default()
        };
        assert_eq!(problem(&cfg).map(|p| p.0), Some("mail_from"));
        cfg.mail_from = "Confab <chat@example.com>".into();
        assert_eq!(problem(&cfg).map(|p| p.0), Some("public_url"));
        cfg.public_url = "https://chat.example.com/".into();
        assert_eq!(problem(&cfg), None);
        assert_eq!(base_url(&cfg), "https://chat.example.com");
    }
}
