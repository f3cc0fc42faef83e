//! Daemon configuration: built-in defaults, then a TOML file, then `MARKETD_*`
//! environment variables and flags (clap merges those two), each overriding the last.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Every bound the daemon enforces, named so that hitting one is an answer, not a crash.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Commands waiting for the store writer; a full queue answers 503.
    pub write_queue_max: usize,
    /// Commands applied in one write transaction (one fsync).
    pub write_batch_max: usize,
    /// Live reservations held in memory at once.
    pub reservations_max: usize,
    /// SKUs the reservation table has room for.
    pub skus_max: usize,
    /// Suppliers the catalog keeps (all of them are held in memory).
    pub suppliers_max: usize,
    /// Connections served at once; more wait in the kernel's backlog.
    pub connections_max: usize,
    /// Lines in one reservation, order or stock upload.
    pub lines_max: usize,
    /// How long shutdown waits, from the signal, for in-flight requests and for
    /// outbound webhooks on their way.
    pub drain_timeout_s: u64,
    /// How long a connection may take to send a request head, or sit idle between
    /// requests, before it is closed (and its place freed).
    pub header_read_timeout_s: u64,
    /// Reservations the expiry sweeper looks at per tick.
    pub sweep_slots_per_tick: usize,
    /// SLA deadlines held in memory; the rest wait in the store's due index.
    pub deadlines_in_memory_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            write_queue_max: 65_536,
            write_batch_max: 4_096,
            reservations_max: 1 << 18,
            skus_max: 1 << 18,
            suppliers_max: 10_000,
            connections_max: 4_096,
            lines_max: 1_000,
            drain_timeout_s: 10,
            header_read_timeout_s: 10,
            sweep_slots_per_tick: 65_536,
            deadlines_in_memory_max: 65_536,
        }
    }
}

/// The settings a TOML file may hold. Unknown keys are refused, so a typo is loud.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub log_format: LogFormat,
    /// ISO 4217 code of the one currency all money is in.
    pub currency: String,
    /// Where operator alerts go, if anywhere.
    pub alerts_url: Option<String>,
    pub alerts_secret: Option<String>,
    /// Seconds added to the wall clock; 0 in production.
    pub clock_offset_s: i64,
    pub limits: Limits,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("marketd-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 7070)),
            log_format: LogFormat::Pretty,
            currency: "USD".to_owned(),
            alerts_url: None,
            alerts_secret: None,
            clock_offset_s: 0,
            limits: Limits::default(),
        }
    }
}

/// Largest clock shift accepted: ten years either way.
pub const CLOCK_OFFSET_S_MAX: u64 = 10 * 366 * 24 * 3600;

/// What went wrong loading the configuration.
#[derive(Debug)]
pub enum ConfigError {
    Read(PathBuf, std::io::Error),
    Parse(PathBuf, String),
    Invalid(String),
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Read(path, e) => write!(f, "cannot read config {}: {e}", path.display()),
            Self::Parse(path, e) => write!(f, "config {} is not valid: {e}", path.display()),
            Self::Invalid(why) => write!(f, "invalid configuration: {why}"),
        }
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads a TOML file over the defaults.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| ConfigError::Read(path.to_owned(), e))?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse(path.to_owned(), e.to_string()))
    }

    /// Checks what the types alone do not.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let c = &self.currency;
        if c.len() != 3 || !c.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(ConfigError::Invalid(format!(
                "currency {c:?} is not an ISO 4217 code such as USD"
            )));
        }
        let l = &self.limits;
        // Each limit sizes memory allocated up front or a wait; the upper bounds keep
        // a typo from asking for terabytes (or overflowing a count) at start-up.
        let n = |v: usize| v as u64;
        let ranges = [
            ("write_queue_max", n(l.write_queue_max), 1, 1 << 24),
            ("write_batch_max", n(l.write_batch_max), 1, 1 << 20),
            ("reservations_max", n(l.reservations_max), 1, 1 << 24),
            ("skus_max", n(l.skus_max), 1, 1 << 24),
            ("suppliers_max", n(l.suppliers_max), 1, 1 << 20),
            ("connections_max", n(l.connections_max), 1, 1 << 20),
            ("lines_max", n(l.lines_max), 1, 1 << 16),
            (
                "sweep_slots_per_tick",
                n(l.sweep_slots_per_tick),
                1,
                1 << 24,
            ),
            (
                "deadlines_in_memory_max",
                n(l.deadlines_in_memory_max),
                1,
                1 << 24,
            ),
            ("header_read_timeout_s", l.header_read_timeout_s, 1, 3_600),
            ("drain_timeout_s", l.drain_timeout_s, 0, 3_600),
        ];
        if let Some((name, _, min, max)) = ranges
            .iter()
            .find(|(_, v, min, max)| !(min..=max).contains(&v))
        {
            return Err(ConfigError::Invalid(format!(
                "limits.{name} must be from {min} to {max}"
            )));
        }
        if let Some(url) = &self.alerts_url {
            crate::domain::check_url("alerts_url", url)
                .map_err(|p| ConfigError::Invalid(p.detail))?;
        }
        if let Some(secret) = &self.alerts_secret
            && !crate::secret::is_webhook_secret(secret)
        {
            return Err(ConfigError::Invalid(
                "alerts_secret must be whsec_ followed by base64".into(),
            ));
        }
        if self.clock_offset_s.unsigned_abs() > CLOCK_OFFSET_S_MAX {
            return Err(ConfigError::Invalid(format!(
                "clock_offset_s must be within ±{CLOCK_OFFSET_S_MAX} s"
            )));
        }
        if self.alerts_url.is_some() != self.alerts_secret.is_some() {
            return Err(ConfigError::Invalid(
                "alerts_url and alerts_secret go together".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_overrides_defaults_and_refuses_unknown_keys() {
        let c: Config =
            toml::from_str("listen = \"127.0.0.1:9000\"\n[limits]\nlines_max = 5\n").unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.limits.lines_max, 5);
        assert_eq!(c.limits.write_batch_max, Limits::default().write_batch_max);
        assert!(toml::from_str::<Config>("listne = \"x\"").is_err());
    }

    #[test]
    fn validate_rejects_bad_currency_and_zero_limits() {
        let mut c = Config::default();
        assert!(c.validate().is_ok());
        c.currency = "usd".into();
        assert!(c.validate().is_err());
        c.currency = "EUR".into();
        c.limits.write_batch_max = 0;
        assert!(c.validate().is_err());
    }

    #[test]
    fn validate_bounds_every_limit_from_above() {
        let mut c = Config::default();
        c.limits.drain_timeout_s = 0; // stop at once: allowed
        assert!(c.validate().is_ok());
        c.limits.connections_max = usize::MAX; // more than a semaphore holds
        let Err(ConfigError::Invalid(why)) = c.validate() else {
            panic!("a huge connections_max was accepted");
        };
        assert!(why.contains("limits.connections_max"), "{why}");
        c.limits.connections_max = 4_096;
        c.limits.reservations_max = 1 << 30; // 64 GiB of slots
        assert!(c.validate().is_err());
    }

    #[test]
    fn validate_wants_a_whsec_alerts_secret() {
        let mut c = Config {
            alerts_url: Some("http://127.0.0.1:9100/alerts".into()),
            alerts_secret: Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()),
            ..Config::default()
        };
        assert!(c.validate().is_ok());
        c.alerts_secret = Some("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into());
        assert!(c.validate().is_err());
        c.alerts_secret = Some("whsec_not base64!".into());
        assert!(c.validate().is_err());
    }
}
