//! The texts of the mails confab sends. They carry a one-time link, never a
//! password: mail crosses many servers in clear and stays in mailboxes.

/// Subject and body of the welcome mail to an account an admin created.
pub fn welcome(display_name: &str, username: &str, link: &str, hours: u64) -> (String, String) {
    let subject = "Your confab account".to_string();
    let body = format!(
        "Hello {display_name},\n\n\
         An account named \"{username}\" has been created for you.\n\
         Choose your password here (the link works once, for {hours} hours):\n\n\
         {link}\n\n\
         If the link has expired, use \"Forgot password?\" on the sign-in page.\n"
    );
    (subject, body)
}

/// Subject and body of the password-reset mail.
pub fn reset(display_name: &str, username: &str, link: &str, minutes: u64) -> (String, String) {
    let subject = "Reset your confab password".to_string();
    let body = format!(
        "Hello {display_name},\n\n\
         Someone asked to reset the password of the account \"{username}\".\n\
         Choose a new password here (the link works once, for {minutes} minutes):\n\n\
         {link}\n\n\
         If it was not you, ignore this mail: your password stays as it is.\n"
    );
    (subject, body)
}
