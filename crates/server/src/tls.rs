//! The process's TLS crypto provider for outgoing HTTPS (webhooks, SMTP
//! over TLS). rustls needs exactly one installed before the first client is
//! built; ring is the provider lettre already brings.

/// Makes ring the process's TLS crypto provider. Idempotent.
pub fn install_tls_provider() {
    // Err means a provider is installed already, which is as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
