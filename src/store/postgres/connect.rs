//! Getting to the database: the URL and its TLS settings, this node's connection pool,
//! and the schema migrations (run by every node at start, and by `hookd migrate`).
//!
//! TLS follows libpq's `sslmode` (in the URL's query, or as `sslmode=` in a key=value
//! string), hookd's own check of each:
//!
//! | `sslmode`     | encrypted            | the server's certificate                   |
//! |---------------|----------------------|--------------------------------------------|
//! | `disable`     | never                | —                                          |
//! | `prefer` (default) | if the server offers TLS | not checked (as libpq without a root file) |
//! | `require`     | always               | not checked: encryption only, no protection against a man in the middle |
//! | `verify-ca`   | always               | must chain to a trusted root; the host name is not checked |
//! | `verify-full` | always               | must chain to a trusted root and name the host connected to |
//!
//! Trusted roots are the PEM certificates of `sslrootcert=<file>` when given (a private
//! CA, the usual case for a database), else the Mozilla roots of `webpki-roots`. Even
//! unchecked certificates must sign the handshake (the TLS session is real).

use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::PgSettings;
use crate::store::StoreError;

/// How long a request waits for a connection (or for a new one to be made) before the
/// store answers `Unavailable`: a dead database is a 503, not a hung request.
const POOL_WAIT: Duration = Duration::from_secs(5);

/// The schema versions this binary knows, in order: (version, SQL).
const MIGRATIONS: &[(i32, &str)] = &[(1, include_str!("migrations/0001_init.sql"))];

/// Key of the session-wide advisory lock that serialises migrations across nodes.
const MIGRATE_LOCK: i64 = 0x686f_6f6b_6400_0001; // "hookd" 0 1

/// The newest schema version this binary knows.
pub fn known_version() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.0)
}

/// What `sslmode` asks of TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Tls {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// A parsed URL: tokio-postgres's config (without the TLS keys it does not know) and
/// the TLS connector it is to use.
pub(super) struct Target {
    pub config: tokio_postgres::Config,
    pub tls: MakeRustlsConnect,
    pub mode: Tls,
}

fn config_error(what: impl std::fmt::Display) -> StoreError {
    StoreError::Config(what.to_string())
}

/// Parses `url` (a `postgres://` URL or a libpq key=value string).
pub(super) fn target(url: &str) -> Result<Target, StoreError> {
    let mut mode = Tls::Prefer;
    let mut root_file = None;
    let mut take = |key: &str, value: &str| -> Result<bool, StoreError> {
        match key {
            "sslmode" => {
                mode = match value {
                    "disable" => Tls::Disable,
                    "prefer" | "allow" => Tls::Prefer,
                    "require" => Tls::Require,
                    "verify-ca" => Tls::VerifyCa,
                    "verify-full" => Tls::VerifyFull,
                    other => {
                        return Err(config_error(format!(
                            "unknown sslmode `{other}` (disable, prefer, require, verify-ca or verify-full)"
                        )));
                    }
                };
                Ok(true)
            }
            "sslrootcert" => {
                root_file = Some(value.to_owned());
                Ok(true)
            }
            _ => Ok(false),
        }
    };
    let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        match url.split_once('?') {
            None => url.to_owned(),
            Some((base, query)) => {
                let mut kept = Vec::new();
                for pair in query.split('&') {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    if !take(k, v)? {
                        kept.push(pair);
                    }
                }
                if kept.is_empty() {
                    base.to_owned()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
        }
    } else {
        let mut kept = Vec::new();
        for word in url.split_whitespace() {
            let (k, v) = word.split_once('=').unwrap_or((word, ""));
            if !take(k.trim(), v.trim())? {
                kept.push(word);
            }
        }
        kept.join(" ")
    };
    let mut config: tokio_postgres::Config = rest.parse().map_err(config_error)?;
    config.ssl_mode(match mode {
        Tls::Disable => SslMode::Disable,
        Tls::Prefer => SslMode::Prefer,
        _ => SslMode::Require,
    });
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(POOL_WAIT);
    }
    // A silently dead peer (a partition) is noticed by the kernel within a minute.
    config.keepalives(true);
    config.keepalives_idle(Duration::from_secs(30));
    if config.get_application_name().is_none() {
        config.application_name("hookd");
    }
    let tls = MakeRustlsConnect::new(client_config(mode, root_file.as_deref())?);
    Ok(Target { config, tls, mode })
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn client_config(mode: Tls, root_file: Option<&str>) -> Result<rustls::ClientConfig, StoreError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(config_error)?;
    let verifier: Arc<dyn ServerCertVerifier> = match mode {
        Tls::Disable | Tls::Prefer | Tls::Require => Arc::new(Unchecked(provider())),
        Tls::VerifyCa | Tls::VerifyFull => {
            let mut roots = RootCertStore::empty();
            match root_file {
                Some(path) => {
                    let certs = CertificateDer::pem_file_iter(path)
                        .map_err(|e| config_error(format!("sslrootcert {path}: {e}")))?;
                    for cert in certs {
                        let cert =
                            cert.map_err(|e| config_error(format!("sslrootcert {path}: {e}")))?;
                        roots
                            .add(cert)
                            .map_err(|e| config_error(format!("sslrootcert {path}: {e}")))?;
                    }
                    if roots.is_empty() {
                        return Err(config_error(format!(
                            "sslrootcert {path}: no certificate in it"
                        )));
                    }
                }
                None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            }
            let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(
                roots.into(),
                provider(),
            )
            .build()
            .map_err(config_error)?;
            Arc::new(Verified {
                inner: webpki,
                names: mode == Tls::VerifyFull,
            })
        }
    };
    Ok(builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

/// `prefer` and `require`: any certificate, but the handshake must be signed by it.
#[derive(Debug)]
struct Unchecked(Arc<CryptoProvider>);

/// `verify-ca` (`names: false`) and `verify-full`: webpki's checks, with the host name
/// check dropped for `verify-ca`.
#[derive(Debug)]
struct Verified {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    names: bool,
}

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

impl ServerCertVerifier for Verified {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            // webpki checks the chain before the name: a name error means the chain is good.
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.names => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// This node's pool: `pool_size` connections at most; a caller waits [`POOL_WAIT`] at
/// most for one (then the store is unavailable: 503).
pub(super) fn pool(
    settings: &PgSettings,
    target: Target,
) -> Result<deadpool_postgres::Pool, StoreError> {
    let manager = deadpool_postgres::Manager::from_config(
        target.config,
        target.tls,
        deadpool_postgres::ManagerConfig {
            recycling_method: deadpool_postgres::RecyclingMethod::Fast,
        },
    );
    deadpool_postgres::Pool::builder(manager)
        .max_size(settings.pool_size.max(2))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .wait_timeout(Some(POOL_WAIT))
        .create_timeout(Some(POOL_WAIT))
        .recycle_timeout(Some(POOL_WAIT))
        .build()
        .map_err(config_error)
}

/// What `hookd migrate` did: the schema version before and after.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MigrateReport {
    /// 0: the database had no hookd schema.
    pub from: i32,
    pub to: i32,
}

/// Brings the schema to [`known_version`]: each missing migration in order, all in one
/// transaction under an advisory lock, so that nodes starting together migrate once
/// (the others wait, then find nothing to do). A schema newer than this binary knows is
/// refused ([`StoreError::SchemaTooNew`]): an older hookd must not write to it.
pub(super) async fn migrate(
    client: &mut tokio_postgres::Client,
) -> Result<MigrateReport, StoreError> {
    migrate_to(client, MIGRATIONS).await
}

async fn migrate_to(
    client: &mut tokio_postgres::Client,
    migrations: &[(i32, &str)],
) -> Result<MigrateReport, StoreError> {
    let known = migrations.last().map_or(0, |m| m.0);
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATE_LOCK])
        .await?;
    // `IF NOT EXISTS` answers a NOTICE when the table is there (every start after the
    // first), which the driver would log as if it were news.
    tx.batch_execute(
        "SET LOCAL client_min_messages = warning;
         CREATE TABLE IF NOT EXISTS hookd_schema (
             version    integer PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await?;
    let from: i32 = tx
        .query_one("SELECT coalesce(max(version), 0) FROM hookd_schema", &[])
        .await?
        .try_get(0)?;
    if from > known {
        return Err(StoreError::SchemaTooNew { found: from, known });
    }
    for (version, sql) in migrations.iter().filter(|m| m.0 > from) {
        tx.batch_execute(sql).await?;
        tx.execute("INSERT INTO hookd_schema (version) VALUES ($1)", &[version])
            .await?;
        tracing::info!(version, "database schema migrated");
    }
    tx.commit().await?;
    Ok(MigrateReport { from, to: known })
}

/// One connection outside any pool (migrations, tests); its driver runs on a task.
pub(super) async fn connect_one(url: &str) -> Result<tokio_postgres::Client, StoreError> {
    let target = target(url)?;
    let (client, connection) = target.config.connect(target.tls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "database connection closed");
        }
    });
    Ok(client)
}

#[cfg(test)]
pub(super) async fn migrate_with(
    client: &mut tokio_postgres::Client,
    migrations: &[(i32, &str)],
) -> Result<MigrateReport, StoreError> {
    migrate_to(client, migrations).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_keys_are_taken_out_of_urls_and_strings() {
        let t = target("postgres://u:p%40ss@127.0.0.1:5/db?sslmode=verify-ca&application_name=x")
            .unwrap();
        assert_eq!(t.mode, Tls::VerifyCa);
        assert_eq!(t.config.get_ssl_mode(), SslMode::Require);
        assert_eq!(t.config.get_application_name(), Some("x"));
        assert_eq!(t.config.get_password(), Some(&b"p@ss"[..]));
        let t = target("postgres://u@127.0.0.1/db?sslmode=disable").unwrap();
        assert_eq!(t.mode, Tls::Disable);
        assert_eq!(t.config.get_ssl_mode(), SslMode::Disable);
        let t = target("host=127.0.0.1 user=u sslmode=verify-full dbname=d").unwrap();
        assert_eq!(t.mode, Tls::VerifyFull);
        assert_eq!(t.config.get_dbname(), Some("d"));
        assert_eq!(target("postgres://u@h/db").unwrap().mode, Tls::Prefer);
        let bad = target("postgres://u@h/db?sslmode=sometimes").err().unwrap();
        assert!(bad.to_string().contains("unknown sslmode"), "{bad}");
        let missing = target("postgres://u@h/db?sslmode=verify-full&sslrootcert=/nonexistent")
            .err()
            .unwrap();
        assert!(missing.to_string().contains("sslrootcert"), "{missing}");
    }
}
