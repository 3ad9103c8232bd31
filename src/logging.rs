//! Log output through `tracing`: human-readable text by default, JSON on
//! request, stdout only. The filter comes from `CONFAB_LOG`, else `RUST_LOG`,
//! else the configured `log_level`; noisy dependencies are kept at warn
//! (the PostgreSQL client among them: at debug it logs statement parameters).
//! Passwords, tokens and message bodies are never logged.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber (a second call is a no-op).
pub fn init(level: &str, format: LogFormat) {
    let directive = std::env::var("CONFAB_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| level.to_string());
    let filter = EnvFilter::try_new(format!(
        "{directive},hyper=warn,hyper_util=warn,tungstenite=warn,tokio_tungstenite=warn,\
         tokio_postgres=warn,postgres_protocol=warn,deadpool_postgres=warn"
    ))
    .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout)
        .with_target(false);
    let result = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .try_init(),
    };
    let _ = result;
}
